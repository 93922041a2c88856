# %% [markdown]
# # 5. Memory for value and policy learning
#
# *After Machin's "recurrent networks" tutorial.* On a partially observable task an agent
# needs memory. Machin compared four ways to give it some, with DQN and PPO:
#
# | | value-based | policy-based |
# |---|---|---|
# | a window of the last k observations | DQN with history | PPO with history |
# | a recurrent core | DRQN | recurrent PPO |
#
# We run the four on `CartPole-P-v1`: CartPole with the two velocities hidden, so a
# single observation (cart position, pole angle) says nothing about where things are
# going. A feedforward PPO on single observations is the memoryless baseline.
#
# The budget cell: 1.0 trains each agent for 200k env steps (a few minutes on a 2-core
# CPU, enough for the curves to separate, not for every method to converge); the test
# suite runs a small fraction.

# %% tags=["parameters"]
import os

BUDGET = float(os.environ.get("RLJAX_NB_BUDGET", "1.0"))  # fraction of the full budget
FULL_STEPS = 200_000

# %%
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

from rljax.metrics import smooth
from rljax import envs
from rljax.algos import dqn, drqn, ppo

STEPS = max(4_000, round(BUDGET * FULL_STEPS / 4_000) * 4_000)
print("env steps per agent:", STEPS)

# %% [markdown]
# ## What the agent sees
#
# `envs.make("CartPole-P-v1")` keeps observation features 0 and 2 of CartPole. With
# `history=4` the observation is the last 4 of those, oldest first, zero-padded at an
# episode start. Each step pushes exactly one observation (Machin's `History` appended
# each state twice, so its windows covered fewer steps than they claimed), and an
# episode start clears the window, so it never mixes two episodes.

# %%
env, env_params = envs.make("CartPole-P-v1", history=4)
print("observation shape:", envs.spec(env, env_params)[0], "= 4 steps x (position, angle)")



def show(t, obs):
    window = np.asarray(obs).reshape(4, 2)
    print(f"t={t}  " + " | ".join(f"({x:+.3f}, {angle:+.3f})" for x, angle in window))


obs, state = env.reset(jax.random.key(0), env_params)
show(0, obs)
for t in range(1, 5):
    obs, state, *_ = env.step(jax.random.key(t), state, 1, env_params)
    show(t, obs)

# %% [markdown]
# ## The four agents (and the baseline)
#
# - **DQN with history**: a 120-84 MLP Q-network on the 4-step window; replay, a target
#   network, double Q and 3-step targets.
# - **DRQN**: an MLP, a GRU-128 core and an MLP head. Replay holds windows of 30 steps
#   with the carry the actor had before the window; the first 10 steps only refresh that
#   carry (burn-in), the other 20 are trained through time. Machin instead trained from
#   a zero state on 4-step windows while acting with a carried state, so the network
#   learned from states it never acted in; `drqn.Config(initial_carry="zero", burn_in=0)`
#   gives that variant for comparison.
# - **PPO with history**: two 64-64 MLPs (actor, critic) on the 4-step window.
# - **Recurrent PPO**: a GRU-128 core; each minibatch re-runs the core over whole
#   rollout sequences from their stored starting carry, with resets at episode starts.
# - **PPO, no memory**: the baseline, on single observations.
#
# Time limits (500 steps) are truncations: every method bootstraps from the value of
# the last observation there, and stops only where the pole falls.

# %%
log_every = 1_000
off_policy = dict(env_id="CartPole-P-v1", total_steps=STEPS, log_every=log_every,
                  learning_starts=min(10_000, STEPS // 4), double_q=True, n_step=3)
runs = {
    "DQN, history 4": (dqn.train, dqn.Config(history=4, **off_policy)),
    "DRQN (GRU)": (drqn.train, drqn.Config(**off_policy)),
    "PPO, history 4": (ppo.train, ppo.Config(env_id="CartPole-P-v1", history=4, total_steps=STEPS)),
    "recurrent PPO (GRU)": (ppo.train, ppo.recurrent_config(env_id="CartPole-P-v1", total_steps=STEPS)),
    "PPO, no memory": (ppo.train, ppo.Config(env_id="CartPole-P-v1", total_steps=STEPS)),
}

# %% [markdown]
# Each `train(config, key)` is one compiled program; the metrics come back as arrays
# (one row per update for PPO, per 1000 env steps for DQN and DRQN).

# %%
results = {}
for name, (train, config) in runs.items():
    start = time.perf_counter()
    result = jax.block_until_ready(jax.jit(train)(config, jax.random.key(0)))
    results[name] = result
    print(f"{name:20s} {time.perf_counter() - start:6.1f} s (compile + train)")

# %% [markdown]
# ## Learning curves
#
# The return of the episodes that ended, against env steps. PPO's exploration comes from
# its stochastic policy; DQN and DRQN act epsilon-greedily, epsilon falling from 1 to
# 0.05 over the first half of the run, so their training returns lag their greedy ones.

# %%
fig, ax = plt.subplots(figsize=(8, 4))
for name, result in results.items():
    m = jax.device_get(result.metrics)
    window = max(1, len(m["env_steps"]) // 20)
    ax.plot(m["env_steps"], smooth(m["episode_return"], window), label=name,
            linestyle="--" if "no memory" in name else "-")
ax.set(xlabel="env steps", ylabel="episode return", title="CartPole-P-v1 (velocities hidden)")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Greedy play
#
# Each trained agent on 20 fresh episodes, acting greedily (argmax Q or argmax pi; the
# recurrent ones carry their state through the episode).

# %%
from rljax import rollout
from rljax.algos.common import make_env


algo_of = {ppo.train: ppo, dqn.train: dqn, drqn.train: drqn}

for name, (train, config) in runs.items():
    env, env_params, spec = make_env(config)
    agent = algo_of[train].make_agent(config, spec)   # the contract: every algorithm has one
    scores, _ = jax.jit(lambda p, k: rollout.evaluate(
        agent, p, env, env_params, k, num_episodes=20, greedy=True))(
        results[name].train_state.params, jax.random.key(1))
    print(f"{name:20s} greedy return {float(scores.mean()):6.1f} +- {float(scores.std()):5.1f}")

# %% [markdown]
# In one full-budget run (seed 0, 200k steps each) the greedy returns came out near 160
# (DQN, history 4), 120 (DRQN), 390 (PPO, history 4), 380 (recurrent PPO) and 40 (PPO
# without memory); single seeds vary a lot, and `benchmarks/` has multi-seed runs of
# 0.5M to 1M steps. The ordering is the point of Machin's tutorial: a window of
# observations recovers the velocities for a feedforward network, a recurrent core
# learns to keep them, and without either the agent is stuck near 40.
