# %% [markdown]
# # 2. A2C, loss by loss
#
# *After SaLinA's A2C tutorial.* We collect one rollout, write the A2C loss step by step
# from `rljax.returns` and `rljax.losses`, check it against the library's loss, then
# train with `rljax.algos.a2c` (all updates in one compiled program) and plot learning
# curves for a few seeds.
#
# The cell below sets the training budget: 1.0 is the full run (a few minutes on a
# 2-core CPU); the test suite runs this notebook with a small fraction.

# %% tags=["parameters"]
import os

BUDGET = float(os.environ.get("RLJAX_NB_BUDGET", "1.0"))  # fraction of the full budget
SEEDS = 3

# %%
import dataclasses

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from rljax.metrics import smooth
from rljax import losses, returns, rollout
from rljax.algos import a2c, onpolicy
from rljax.algos.common import make_env
from rljax.config import static_fields

# %% [markdown]
# ## The configuration
#
# `a2c.preset("salina")` is the SaLinA tutorial's setting (`a2c.Config()`'s own defaults
# are generic, for any env): 8 envs x 16 steps per
# update, gamma 0.95, one hidden layer of 32 ReLU units for the actor and another for
# the critic, Adam with lr 0.01, loss weights 0.1 (policy), 1.0 (critic) and 0.001
# (entropy), on CartPole-v1 cut at 100 steps. Static fields decide shapes and the
# network; the others are numbers that `vmap` could sweep.

# %%
full_steps = 200_000
config = a2c.preset("salina", total_steps=max(8 * 16, int(BUDGET * full_steps) // 128 * 128))
for field in dataclasses.fields(config):
    kind = "static" if field.name in static_fields(config) else "traced"
    print(f"{field.name:18s} {kind:7s} {getattr(config, field.name)!r}")

# %% [markdown]
# ## One rollout
#
# The env, the agent and a rollout of `T = 16` steps in `B = 8` envs, built from the same
# helpers the algorithm uses.

# %%
env, env_params, spec = make_env(config)
agent = a2c.make_agent(config, spec)
params = agent.init(jax.random.key(0), jnp.zeros(spec.obs_shape))

collect = jax.jit(lambda params, state, key: rollout.rollout(
    agent, params, env, env_params, state, key, config.num_steps))
state = rollout.init_rollout(env, env_params, agent, jax.random.key(1), config.num_envs)
for i in range(8):   # a few fragments in, so episodes straddle the fragment's edges
    state, traj = collect(params, state, jax.random.key(2 + i))
print("reward", traj.reward.shape, "| episodes ended in this fragment:", int(traj.done.sum()),
      "| of which truncated at 100 steps:", int(traj.truncated.sum()))

# %% [markdown]
# ## The loss, step by step
#
# **Values.** The loss re-runs the network over the stored fragment (from `carry0`, with
# resets at `first`; for this MLP that is simply the network applied to every `obs[t]`).
# With the acting parameters it reproduces the values and log-probabilities the rollout
# recorded.

# %%
dist, value = onpolicy.recompute(agent, params, traj)         # Categorical [T, B], [T, B]
logits = dist.logits                                           # [T, B, A]
np.testing.assert_allclose(value, traj.outputs.value, rtol=1e-5, atol=1e-6)
print("logits", logits.shape, "value", value.shape)

# %% [markdown]
# **Successor values.** The TD target of step `t` needs the value of the state *after*
# it: `value[t + 1]` inside the fragment, V(`last_obs`) after its last step, and
# V(`final_obs[t]`) where a time limit cut the episode (the observation after the step,
# not the reset one that follows). `rollout.successor_values` assembles them.
#
# **Discounts.** `gamma * (1 - terminated)`: only a real ending stops bootstrapping.
# SaLinA's tutorial multiplied by `1 - done`, so its critic learned that every 100th
# step of a balanced pole is worth nothing; its loop also counted the transition at
# each fragment boundary twice. Here every step sits in exactly one fragment.

# %%
last_value = rollout.bootstrap_value(agent, params, traj)     # V(last_obs), [B]
v_t = rollout.successor_values(traj, last_value)               # [T, B]
discount_t = config.gamma * (1.0 - traj.terminated.astype(jnp.float32))

td_error = traj.reward + discount_t * v_t - value              # delta_t, [T, B]

# %% [markdown]
# With `gae_lambda = 0` (the SaLinA preset) the advantage is that one-step TD error; with
# `gae_lambda > 0` it is GAE(lambda), whose trace is cut at truncations. The library's
# estimator takes one trajectory `[T]`; `returns.over_envs` maps it over the envs.

# %%
advantage = returns.over_envs(returns.generalized_advantage, traj.reward, discount_t,
                              value, v_t, lambda_=config.gae_lambda, truncated_t=traj.truncated)
np.testing.assert_allclose(advantage, td_error, rtol=1e-5, atol=1e-6)

# %% [markdown]
# **The three terms.** Written out, then with `rljax.losses` (which stop the gradient
# on targets and advantages, so only the critic's `value` and the policy's `log pi` are
# fitted). The losses take log-probabilities and entropies from the policy's
# distribution value (`dist.log_prob(action)`, `dist.entropy()`), never logits, so the
# same losses serve any action space:
#
# - critic: `0.5 * mean(delta**2)`, the squared error to the target `r + discount * v_next`;
# - policy: `-mean(log pi(a_t | s_t) * delta_t)`;
# - entropy: `-mean(H(pi(. | s_t)))`, minimised, so it pushes the entropy up.

# %%
log_pi = jax.nn.log_softmax(logits)
log_pi_a = jnp.take_along_axis(log_pi, traj.action[..., None], axis=-1)[..., 0]
by_hand = dict(
    critic=0.5 * jnp.mean(td_error**2),
    policy=-jnp.mean(log_pi_a * td_error),
    entropy=jnp.mean(jnp.sum(jnp.exp(log_pi) * log_pi, axis=-1)),
)

critic_loss, _ = losses.value_loss(value, traj.reward + discount_t * v_t)
policy_loss, _ = losses.policy_gradient_loss(dist.log_prob(traj.action), advantage)
entropy_loss, _ = losses.entropy_loss(dist.entropy())
library = dict(critic=critic_loss, policy=policy_loss, entropy=entropy_loss)

for name in by_hand:
    print(f"{name:8s} by hand {float(by_hand[name]): .6f}   rljax.losses {float(library[name]): .6f}")
    np.testing.assert_allclose(by_hand[name], library[name], rtol=1e-5, atol=1e-6)

total = (config.pg_coef * policy_loss + config.vf_coef * critic_loss
         + config.ent_coef * entropy_loss)
library_total, metrics = a2c.loss_fn(config, agent)(params, traj)
np.testing.assert_allclose(total, library_total, rtol=1e-5, atol=1e-6)
print("total", float(total), "== a2c.loss_fn", float(library_total))

# %% [markdown]
# One loss for both networks: the actor's parameters get gradient only from the policy
# and entropy terms, the critic's only from the critic term, so a single optimizer step
# on the sum updates each with its own part.

# %%
def grad_norms(loss):
    grads = jax.grad(loss)(params)["params"]
    return {name: round(float(jnp.sqrt(sum(jnp.sum(g**2) for g in jax.tree.leaves(sub)))), 5)
            for name, sub in grads.items()}


def policy_term(p):
    dist, _ = onpolicy.recompute(agent, p, traj)
    return losses.policy_gradient_loss(dist.log_prob(traj.action), advantage)[0]


def critic_term(p):
    _, value = onpolicy.recompute(agent, p, traj)
    return losses.value_loss(value, traj.reward + discount_t * v_t)[0]


print("policy term:", grad_norms(policy_term))
print("critic term:", grad_norms(critic_term))

# %% [markdown]
# ## Training
#
# `a2c.train(config, key)` runs every update (rollout, loss, Adam step) inside one
# `lax.scan`. `vmap` over keys trains several seeds in the same program.

# %%
keys = jax.random.split(jax.random.key(42), SEEDS)
result = jax.jit(jax.vmap(a2c.train, in_axes=(None, 0)))(config, keys)
metrics = jax.device_get(result.metrics)
print("updates:", metrics["episode_return"].shape[1], "| env steps per seed:",
      int(metrics["env_steps"][0, -1]))


# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for seed in range(SEEDS):
    steps = metrics["env_steps"][seed]
    axes[0].plot(steps, smooth(metrics["episode_return"][seed]), label=f"seed {seed}")
    axes[1].plot(steps, smooth(metrics["entropy"][seed]))
axes[0].set(xlabel="env steps", ylabel="episode return", title="A2C on CartPole-v1 (100-step limit)")
axes[1].set(xlabel="env steps", ylabel="policy entropy")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Finally, the greedy policy of each seed on fresh episodes (the maximum is 100).

# %%
final_params = result.train_state.params
evaluate = jax.jit(jax.vmap(lambda p, k: rollout.evaluate(
    agent, p, env, env_params, k, num_episodes=10, greedy=True)))
eval_returns, _ = evaluate(final_params, jax.random.split(jax.random.key(7), SEEDS))
print("greedy returns per seed (mean of 10 episodes):", np.asarray(eval_returns.mean(axis=1)))

# %% [markdown]
# Next: [REINFORCE and the rollout fragment](03_reinforce_rollouts.ipynb).
