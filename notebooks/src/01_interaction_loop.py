# %% [markdown]
# # 1. The interaction loop
#
# *After BBRL's "interaction loop" tutorial.* BBRL (like SaLinA) builds an RL loop from
# agents that read and write a shared *workspace*: an env agent writes observations and
# rewards, an action agent writes actions, and a temporal agent runs both for `n` steps.
#
# rljax keeps the ideas and drops the mutable state:
#
# | BBRL | rljax |
# |---|---|
# | env agent (gym env, auto-reset) | `env.step(key, env_state, action, params)`: a pure function, auto-resetting |
# | action agent | `agent.step(params, carry, obs, first, key)`: a pure function |
# | `Agents(env_agent, action_agent)` | a function that calls one, then the other |
# | `TemporalAgent(...)` run for `n` steps | `jax.lax.scan` of that function (`rljax.rollout.rollout`) |
# | workspace | the `Trajectory` the scan returns: a pytree of `[T, B, ...]` arrays |
#
# Everything below runs on CPU in a few seconds.

# %%
import jax
import jax.numpy as jnp
import numpy as np

from rljax import agents, envs, nets, rollout

# %% [markdown]
# ## The environment: two pure functions
#
# `envs.make` returns a gymnax environment and its parameters. The state of the
# environment is a value that `reset` returns and `step` consumes; stepping the same
# state twice with the same key gives the same result. We cap episodes at 15 steps so
# that time limits show up in short rollouts.

# %%
env, env_params = envs.make("CartPole-v1", max_episode_steps=15)
spec = envs.spec(env, env_params)                  # EnvSpec: observation and action spaces
obs_shape, num_actions = spec.obs_shape, spec.num_actions
print("observation shape", obs_shape, "| actions", num_actions)

obs, env_state = env.reset(jax.random.key(0), env_params)
step = env.step(jax.random.key(1), env_state, 1, env_params)
next_obs, _, reward, terminated, truncated, info = step
print("obs     ", obs)
print("next obs", next_obs, "reward", reward, "terminated", terminated, "truncated", truncated)
print("info keys", sorted(info))

again = env.step(jax.random.key(1), env_state, 1, env_params)
assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, step, again)))  # pure: same in, same out

# %% [markdown]
# The step API is gymnax 1.0's: `terminated` means the episode *ended* (the pole fell),
# `truncated` means it was *cut* by the time limit. The env resets itself at either, so
# the returned observation already starts the next episode, and
# `info["final_observation"]` keeps the last observation of the finished one.
#
# ## Composing an env and an agent by hand
#
# Here is the whole BBRL example in a dozen lines: an "action agent" that picks random
# actions, composed with the env into one step function, run by
# `lax.scan` for 20 steps. The scan's stacked outputs are the workspace.

# %%
def random_agent(key, obs):
    return jax.random.randint(key, (), 0, num_actions)


def agent_then_env(carry, key):
    env_state, obs = carry
    k_act, k_env = jax.random.split(key)
    action = random_agent(k_act, obs)
    next_obs, env_state, reward, terminated, truncated, info = env.step(
        k_env, env_state, action, env_params)
    record = dict(obs=obs, action=action, reward=reward,
                  terminated=terminated, truncated=truncated)
    return (env_state, next_obs), record


obs, env_state = env.reset(jax.random.key(0), env_params)
_, workspace = jax.lax.scan(agent_then_env, (env_state, obs), jax.random.split(jax.random.key(1), 20))
print({name: value.shape for name, value in workspace.items()})

# %% [markdown]
# Row `t` holds the observation the agent acted on, the action it took, and what the
# env answered to that action. (BBRL's env agent instead reads `action[t-1]` at time
# `t`, so its rewards sit one row below the actions that earned them.)

# %%
print(" t  action  reward  terminated  truncated")
for t in range(len(workspace["action"])):
    print(f"{t:2d}  {int(workspace['action'][t]):6d}  {float(workspace['reward'][t]):6.1f}"
          f"  {bool(workspace['terminated'][t])!s:>10}  {bool(workspace['truncated'][t])!s:>9}")

# %% [markdown]
# ## The library's loop: `rollout.rollout`
#
# `rollout.rollout` is the same scan, batched over `B` envs with `vmap`, for any
# `Agent`: a feedforward or recurrent network wrapped with one interface. Here is a
# small actor-critic MLP (untrained, so its actions are close to uniform).

# %%
net = nets.ActorCritic(num_actions, nets.Trunk(hidden_sizes=(32,)))
agent = agents.actor_critic(net)
params = agent.init(jax.random.key(2), jnp.zeros(obs_shape))

T, B = 20, 4
collect = jax.jit(lambda params, state, key: rollout.rollout(
    agent, params, env, env_params, state, key, num_steps=T))

state = rollout.init_rollout(env, env_params, agent, jax.random.key(3), num_envs=B)
state, traj = collect(params, state, jax.random.key(4))

for name, value in traj._asdict().items():
    print(f"{name:15s}", jax.tree.map(jnp.shape, value))

# %% [markdown]
# The `Trajectory` is time-major. For step `t` of env `b`:
#
# - `obs[t]`: what the agent read; `first[t]`: whether `obs[t]` starts an episode;
#   `carry[t]`: the agent's recurrent state before reading it (`()` here: the MLP has none);
# - `action[t]`, and the agent's `outputs[t]` (`log_prob`, `value`, and `dist`, the policy's distribution value);
# - `reward[t]`, `terminated[t]`, `truncated[t]`: the env's answer to `action[t]`;
# - `final_obs[t]`: the observation after the step, *before* any reset; `final_value[t]`:
#   V(`final_obs[t]`) where the episode was truncated (0 elsewhere);
# - `episode_return[t]`, `episode_length[t]`: of the episode that ended at `t` (where it did);
# - `last_obs`, `last_first`, `last_carry`: where the next rollout starts.
#
# One env's steps, with the episode boundaries:

# %%
b = 0
print(" t  first  action  reward  term   trunc  V(final_obs)  episode return")
for t in range(T):
    done = bool(traj.done[t, b])
    print(f"{t:2d}  {bool(traj.first[t, b])!s:5}  {int(traj.action[t, b]):6d}  {float(traj.reward[t, b]):6.1f}"
          f"  {bool(traj.terminated[t, b])!s:5}  {bool(traj.truncated[t, b])!s:5}"
          f"  {float(traj.final_value[t, b]):12.3f}"
          f"  {float(traj.episode_return[t, b]) if done else '':>14}")

# %% [markdown]
# Three facts about those columns, checked on every env of the batch:
#
# 1. `first[t + 1]` is `done[t]`: after an episode ends, the next observation starts one.
# 2. `final_obs[t]` equals the next observation, except at done steps, where the next
#    observation is the reset one and `final_obs` is the last of the finished episode.
# 3. Only truncations carry a bootstrap value. A time-limit cut is *not* an ending: the
#    return after it is V(`final_obs`), not 0. (SaLinA's and BBRL's tutorials merged
#    both into one `done` flag, which treats every time limit as a death.) A step can be
#    both: the pole fell on the last allowed step. Termination then wins, since the
#    discount `gamma * (1 - terminated)` is 0 there.

# %%
next_first = jnp.concatenate([traj.first[1:], traj.last_first[None]])
next_obs = jnp.concatenate([traj.obs[1:], traj.last_obs[None]])
same_as_next = jnp.all(traj.final_obs == next_obs, axis=-1)

assert bool(jnp.all(next_first == traj.done))
assert bool(jnp.all(same_as_next == ~traj.done))
assert bool(jnp.all((traj.final_value != 0) <= traj.truncated))
print("episodes ended:", int(traj.done.sum()), "| terminated:", int(traj.terminated.sum()),
      "| truncated:", int(traj.truncated.sum()))

# %% [markdown]
# ## Continuing a rollout
#
# The `RolloutState` that `rollout` returns holds the env states, the next observation,
# its `first` flag and the agent's carry, so the next call continues exactly where this
# one stopped: no step is dropped or recorded twice at the boundary, and an episode
# running across it keeps counting its return.

# %%
state, traj2 = collect(params, state, jax.random.key(5))
assert bool(jnp.all(traj2.obs[0] == traj.last_obs))
assert bool(jnp.all(traj2.first[0] == traj.last_first))
print("first steps of the second fragment, env 0: first =", traj2.first[:3, 0],
      "| episode length when it ends:", traj2.episode_length[traj2.done[:, 0], 0][:1])

# %% [markdown]
# The strongest form of that claim: one rollout of `2T` steps equals two rollouts of `T`
# steps when both use the same per-step keys (`rollout` accepts a `[T]` array of keys
# in place of one key).

# %%
keys = jax.random.split(jax.random.key(6), 2 * T)
start = rollout.init_rollout(env, env_params, agent, jax.random.key(7), num_envs=B)

_, whole = rollout.rollout(agent, params, env, env_params, start, keys, num_steps=2 * T)
middle, part1 = rollout.rollout(agent, params, env, env_params, start, keys[:T], num_steps=T)
_, part2 = rollout.rollout(agent, params, env, env_params, middle, keys[T:], num_steps=T)

per_step = [name for name in traj._fields if not name.startswith("last_")]
for name in per_step:
    joined = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), getattr(part1, name), getattr(part2, name))
    jax.tree.map(np.testing.assert_allclose, getattr(whole, name), joined)
print("2 x", T, "steps == 1 x", 2 * T, "steps for:", ", ".join(per_step))

# %% [markdown]
# ## Playing whole episodes
#
# For scores, `rollout.evaluate` plays one complete episode per env (greedy or sampled)
# inside a `lax.while_loop`, and returns each episode's return and length.

# %%
returns, lengths = jax.jit(lambda p, k: rollout.evaluate(
    agent, p, env, env_params, k, num_episodes=8, greedy=True))(params, jax.random.key(8))
print("returns", returns, "\nlengths", lengths)

# %% [markdown]
# Next: [A2C](02_a2c.ipynb) replaces the untrained network with one that learns from
# these trajectories.
