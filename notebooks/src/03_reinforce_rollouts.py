# %% [markdown]
# # 3. Rollout fragments and importance-weighted REINFORCE
#
# *After rlplay's REINFORCE walkthrough.* Three things: how a rollout fragment is laid
# out (and how rlplay's layout maps onto rljax's), returns with per-decision importance
# weights, and REINFORCE trained by a learner whose acting policy lags behind it.

# %% tags=["parameters"]
import os

BUDGET = float(os.environ.get("RLJAX_NB_BUDGET", "1.0"))  # fraction of the full budget
LAG = 8                                                   # behaviour lag of the second run

# %%
import dataclasses

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from rljax.metrics import smooth
from rljax import returns, rollout
from rljax.algos import onpolicy, reinforce
from rljax.algos.common import make_env
from rljax.learner import make_learner

# %% [markdown]
# ## The fragment
#
# rlplay records `T + 1` "extended observations" `z_t = (x_t, a_{t-1}, r_t, fin_t)` plus
# the recurrent state `hx` the actor started from, and its loss shifts the record by
# one step to pair each action with its reward. rljax records `T` transitions, each in
# one row, plus the state to continue from:
#
# | rljax `Trajectory` | meaning | rlplay fragment |
# |---|---|---|
# | `obs[t]` | observation acted on | `state.obs[t]` |
# | `first[t]` | `obs[t]` starts an episode | `state.fin[t]` |
# | `carry[t]`, `carry0` | recurrent state before reading `obs[t]`; `carry[0]` | `hx` (start only) |
# | `action[t]` | action taken at `t` | `state.act[t + 1]` |
# | `reward[t]` | reward for `action[t]` | `state.rew[t + 1]` |
# | `terminated[t]`, `truncated[t]` | how the episode ended after `action[t]`, if it did | (one flag, `fin[t + 1]`) |
# | `outputs.log_prob[t]` | log mu(a_t) of the acting policy | `actor[t]` (logits) |
# | `last_obs`, `last_first`, `last_carry` | where the next fragment starts | `state[T]` |
#
# The agent here is recurrent (a GRU core) and reads rlplay's extended observation: the
# config's `prev_action=True` appends the one-hot previous action to CartPole's 4 numbers.

# %%
demo = reinforce.preset("rlplay", core="gru", core_size=16, shared=True, max_episode_steps=20)
env, env_params, spec = make_env(demo)
obs_shape, num_actions = spec.obs_shape, spec.num_actions
agent = reinforce.make_agent(demo, spec)
params = jax.jit(agent.init)(jax.random.key(0), jnp.zeros(obs_shape))
print("observation shape", obs_shape, "= 4 CartPole numbers + one-hot of the previous action")

collect = jax.jit(lambda params, state, key: rollout.rollout(
    agent, params, env, env_params, state, key, demo.num_steps))
state = rollout.init_rollout(env, env_params, agent, jax.random.key(1), demo.num_envs)
state, traj1 = collect(params, state, jax.random.key(2))
state, traj = collect(params, state, jax.random.key(3))
print("carry0", traj.carry0.shape, "| carry", traj.carry.shape, "| last_carry", traj.last_carry.shape)

# %% [markdown]
# A fragment starts from the carry the previous one ended with (mid-episode, so it is
# not zero), and the learner re-runs the core from that `carry0`:

# %%
np.testing.assert_array_equal(traj.carry0, traj1.last_carry)
np.testing.assert_array_equal(traj.obs[0], traj1.last_obs)
print("|carry0| per env:", np.round(np.linalg.norm(traj.carry0, axis=-1), 3))

# %% [markdown]
# **The previous action** in `obs[t]` is `action[t - 1]`, except at an episode start,
# where there is none and the slot is all zeros. (rlplay's example policy embedded the
# stored previous action at every step, so the first step of an episode saw the last
# action of the one before.)

# %%
prev = traj.obs[..., 4:]
expected = jnp.where(traj.first[1:, :, None], 0.0, jax.nn.one_hot(traj.action[:-1], num_actions))
np.testing.assert_array_equal(prev[1:], expected)
assert bool(jnp.all(prev[traj.first] == 0))

print(" t  first  prev-action slot  action  done")
for t in range(12):
    print(f"{t:2d}  {bool(traj.first[t, 0])!s:5}  {np.asarray(prev[t, 0])!s:16}  {int(traj.action[t, 0]):6d}"
          f"  {bool(traj.done[t, 0])}")

# %% [markdown]
# ## Returns with importance weights
#
# The learner's policy pi may differ from the policy mu that acted. Per-decision
# importance sampling weighs each *later* action's contribution by
# `rho_{t+1} = min(pi(a_{t+1}) / mu(a_{t+1}), c_bar)`:
#
# `G_t = r_t + discount_t * (rho_{t+1} * G_{t+1}   or   v_t where the trace is cut)`
#
# with `discount_t = gamma * (1 - terminated_t)`. The trace is cut, bootstrapping from
# the critic's `v_t`, at time-limit truncations (V(`final_obs`)) and at the fragment's
# last step (V(`last_obs`)); rlplay's walkthrough bootstrapped 0 there. `rho_{t+1}`
# never weighs `r_t`: that reward follows `a_t`, whose own weight `rho_t` multiplies the
# policy-gradient term.
#
# Checked against a plain loop on a small example with a termination (t = 2) and a
# truncation (t = 5):

# %%
T, gamma, c_bar = 8, 0.9, 1.0
r = np.ones(T, np.float32)
terminated = np.zeros(T, bool); terminated[2] = True
truncated = np.zeros(T, bool); truncated[5] = True
v_next = np.linspace(2.0, 4.0, T).astype(np.float32)            # critic's successor values
log_rho = np.log(np.array([1.0, 0.5, 1.5, 0.8, 1.2, 2.0, 0.7, 1.0], np.float32))
discount = gamma * (1.0 - terminated)


def returns_by_hand(rho):
    g = np.zeros(T, np.float32)
    for t in reversed(range(T)):
        cut = truncated[t] or t == T - 1
        tail = v_next[t] if cut else rho[t + 1] * g[t + 1]
        g[t] = r[t] + discount[t] * tail
    return g


for name, log_w, clip in [("on-policy (rho = 1)", None, np.inf),
                          ("importance-weighted", log_rho, np.inf),
                          ("weights clipped at 1", log_rho, c_bar)]:
    rho = np.ones(T) if log_w is None else np.minimum(np.exp(log_w), clip)
    ours = returns.discounted_returns(jnp.asarray(r), jnp.asarray(discount, jnp.float32),
                                      jnp.asarray(v_next), truncated_t=jnp.asarray(truncated),
                                      log_rho_t=None if log_w is None else jnp.asarray(log_w),
                                      c_bar=clip)
    np.testing.assert_allclose(ours, returns_by_hand(rho), rtol=1e-5)
    print(f"{name:21s}", np.round(np.asarray(ours), 3))

# %% [markdown]
# ## The REINFORCE loss, and a lagging behaviour policy
#
# `reinforce.loss_fn` recomputes pi over the fragment, forms `log rho = log pi - log mu`
# from the stored `outputs.log_prob`, computes the weighted returns above and minimises
#
# `-mean(rho_t * (G_t - V(s_t)) * log pi(a_t | s_t)) + c_V * 0.5 * mean((V - G)**2) - c_H * mean(H(pi))`.
#
# With the params that collected the fragment every weight is 1. After one gradient step
# on it the same fragment is one update stale, and the weights move away from 1: that is
# the situation of an actor that lags the learner.

# %%
learner = make_learner(reinforce.loss_fn(demo, agent), onpolicy.adam(demo, demo.lr))
update_fn = jax.jit(learner.update)
train_state = learner.init(params)
for update in range(3):
    train_state, metrics = update_fn(train_state, traj)
    print(f"update {update}: rho mean {float(metrics['rho_mean']):.4f}  loss {float(metrics['loss']):.4f}")

# %% [markdown]
# ## Training
#
# `reinforce.preset("rlplay")` is rlplay's setting: 8 envs x 25 steps, an MLP of 32 ReLU units
# over the extended observation, Adam lr 0.01, gamma 0.99, entropy 0.01, CartPole-v1
# (500-step limit), importance weights unclipped (`c_bar = inf`). With `behaviour_lag=k`
# the rollout of update `n` is collected with the params of update `n - k`, as rlplay's
# parallel actors would, and the weights correct for the difference.
#
# Three runs: no lag; a lag of 8 updates with rlplay's unclipped weights; the same lag
# with weights clipped at `c_bar = 1` (IMPALA's truncation). `c_bar` is a traced
# field, so the two lagged runs are one vmapped program.

# %%
full_steps = 300_000
total = max(8 * 25 * 2, int(BUDGET * full_steps) // 200 * 200)
results = {"lag 0": jax.device_get(
    jax.jit(reinforce.train)(reinforce.preset("rlplay", total_steps=total), jax.random.key(0)).metrics)}

lagged = reinforce.preset("rlplay", total_steps=total, behaviour_lag=LAG)
c_bars = jnp.array([jnp.inf, 1.0])
configs = jax.vmap(lambda c: dataclasses.replace(lagged, c_bar=c))(c_bars)
both = jax.device_get(jax.jit(jax.vmap(reinforce.train, in_axes=(0, None)))(
    configs, jax.random.key(0)).metrics)
for i, c in enumerate(c_bars):
    results[f"lag {LAG}, c_bar {float(c)}"] = jax.tree.map(lambda x: x[i], both)

for name, m in results.items():
    print(f"{name:18s} return (last 50 updates) {np.nanmean(m['episode_return'][-50:]):6.1f}"
          f" | rho mean {np.mean(m['rho_mean']):.3f} | clipped fraction {np.mean(m['rho_clip_frac']):.3f}")


# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for name, m in results.items():
    axes[0].plot(m["env_steps"], smooth(m["episode_return"]), label=name)
    axes[1].plot(m["env_steps"], smooth(m["rho_mean"]), label=name)
axes[0].set(xlabel="env steps", ylabel="episode return", title="REINFORCE on CartPole-v1")
axes[1].set(xlabel="env steps", ylabel="mean importance weight")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The mean weight stays near 1 without clipping (the expectation of pi/mu under mu is
# exactly 1) and drops below 1 with it. In our full-budget run (seed 0) the lag cost a
# lot even with the correction (a return near 100 over the last 50 updates, against
# near 500 without lag), and the clipped run collapsed to a nearly deterministic policy
# (returns near 9): clipping at 1 caps the weight of every action the newer policy has
# come to prefer, and with a lag this long at lr 0.01 the correction falls short. A
# smaller `lr` or a shorter lag narrows the gap; `lr` and `c_bar` are traced, so a
# `vmap` sweep over them is one program.
#
# Next: [recurrent policies](04_recurrent_policies.ipynb), where the carry that the
# fragment stores matters.
