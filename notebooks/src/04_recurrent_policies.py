# %% [markdown]
# # 4. Recurrent policies
#
# *After rlstructures' recurrent-policy tutorial.* A recurrent agent carries a state
# from step to step. Two rules make that correct when envs reset on their own in the
# middle of a rollout:
#
# 1. where a step starts an episode (`first[t]`), the carry is replaced by the initial
#    carry *before* the network reads `obs[t]`;
# 2. the loss re-runs the network over the stored sequence from the carry the rollout
#    started with (`carry0`), applying the same resets, so it sees what the actor saw.
#
# rljax's cores apply rule 1 inside the network, so acting (one step) and learning (a
# whole sequence) are one function. We check both rules, compare greedy and stochastic
# acting, and train a recurrent A2C.

# %% tags=["parameters"]
import os

BUDGET = float(os.environ.get("RLJAX_NB_BUDGET", "1.0"))  # fraction of the full budget

# %%
import dataclasses

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from rljax.metrics import smooth
from rljax import agents, nets, rollout
from rljax.algos import a2c, onpolicy
from rljax.algos.common import make_env

# %% [markdown]
# ## A recurrent actor-critic
#
# An MLP embedding, a GRU core, then the heads. With `shared=False` the actor and the
# critic are two such trunks, each with its own carry: the critic does not start from
# the policy's state (as the code in rlstructures' tutorial did), it has its own memory.

# %%
obs_size, num_actions = 4, 2
net = nets.ActorCritic(num_actions, nets.Trunk(hidden_sizes=(32,), core="gru", core_size=16),
                       shared=False)
agent = agents.actor_critic(net)
params = jax.jit(agent.init)(jax.random.key(0), jnp.zeros(obs_size))
print("carry (actor, critic):", jax.tree.map(jnp.shape, net.initial_carry(1)))

# %% [markdown]
# ## Masked reset: two episodes in one sequence
#
# Episode A has 5 steps, episode B 7; they follow each other in one env. The carry we
# start from is random, as if another episode had been running before A. We run the
# 12 steps as one sequence with `first` marking both starts, then each episode alone
# from the initial (zero) carry.

# %%
obs_a = jax.random.normal(jax.random.key(1), (5, obs_size))
obs_b = jax.random.normal(jax.random.key(2), (7, obs_size))
obs = jnp.concatenate([obs_a, obs_b])[:, None]              # [T = 12, B = 1, 4]
first = jnp.zeros((12, 1), bool).at[0].set(True).at[5].set(True)
stale = jax.tree.map(lambda c: jax.random.normal(jax.random.key(3), c.shape), net.initial_carry(1))


@jax.jit
def run(carry, obs, first):
    _, (dist, value) = net.apply(params, carry, obs, first)   # dist: a Categorical value
    return dist.logits[:, 0], value[:, 0]


together = run(stale, obs, first)
alone_a = run(net.initial_carry(1), obs_a[:, None], jnp.ones((5, 1), bool).at[1:].set(False))
alone_b = run(net.initial_carry(1), obs_b[:, None], jnp.ones((7, 1), bool).at[1:].set(False))
separately = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), alone_a, alone_b)

jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-6), together, separately)
print("one sequence with resets == the two episodes run separately")

# %% [markdown]
# Without the second reset, episode B would start from A's memory: its outputs differ.

# %%
leaky = run(stale, obs, first.at[5].set(False))
print("max |value difference| on episode B without the reset:",
      float(jnp.max(jnp.abs(leaky[1][5:] - together[1][5:]))))
print("... and on episode A:", float(jnp.max(jnp.abs(leaky[1][:5] - together[1][:5]))))

# %% [markdown]
# The reset is `carry = where(first[t], initial_carry, carry)` before step `t`: the
# initial carry is chosen where the step is a start, and the running carry kept
# elsewhere. (rlstructures' tutorial passed the two to its masking helper the other way
# round.)
#
# ## Acting one step at a time is the same function
#
# `agent.step` is the network with `T = 1`. Stepping through the sequence, feeding back
# the carry, reproduces the outputs of the whole-sequence call that the loss uses.

# %%
carry, values = stale, []
for t in range(12):
    carry, out = agent.step(params, carry, obs[t], first[t], jax.random.key(t))
    values.append(out.value[0])
np.testing.assert_allclose(jnp.stack(values), together[1], atol=1e-6)
print("stepwise values == sequence values")

# %% [markdown]
# ## Greedy and stochastic acting
#
# `agent.step(..., greedy=True)` takes the most probable action (rlstructures'
# deterministic mode); by default the action is sampled. Over many samples the
# frequencies follow the policy's probabilities. (An untrained policy is nearly uniform,
# since its head starts with small weights; we give it larger random ones for this demo.)

# %%
sharp = jax.tree.map(lambda x: x, params)
kernel = params["params"]["policy_head"]["logits"]["kernel"]
sharp["params"]["policy_head"]["logits"]["kernel"] = 4.0 * jax.random.normal(jax.random.key(10), kernel.shape)
batch_obs = jax.random.normal(jax.random.key(4), (4, obs_size))
batch_first = jnp.ones(4, bool)
carry0 = net.initial_carry(4)
_, greedy = agent.step(sharp, carry0, batch_obs, batch_first, jax.random.key(5), greedy=True)
probs = jax.nn.softmax(greedy.dist.logits)     # the policy's distribution value
sample = jax.jit(jax.vmap(lambda k: agent.step(sharp, carry0, batch_obs, batch_first, k)[1].action))
actions = sample(jax.random.split(jax.random.key(6), 4000))
print("pi(action 1)         ", np.round(np.asarray(probs[:, 1]), 3))
print("sampled frequency    ", np.round(np.asarray(actions.mean(axis=0)), 3))
print("greedy action        ", np.asarray(greedy.action))
assert bool(jnp.all(greedy.action == greedy.dist.mode()))

# %% [markdown]
# ## Recurrent A2C
#
# `a2c.preset("salina", core="gru")` puts this kind of network into the A2C of notebook 2
# (SaLinA's settings: CartPole-v1 cut at 100 steps). Its loss re-runs the core over each fragment
# from `carry0`, so with the acting params it recomputes exactly the log-probabilities
# and values the actor recorded, although fragments start mid-episode and contain
# resets:

# %%
full_steps = 150_000
config = a2c.preset("salina", core="gru", core_size=32, lr=3e-3,
                    total_steps=max(8 * 16, int(BUDGET * full_steps) // 128 * 128))
env, env_params, spec = make_env(config)
obs_shape = spec.obs_shape
rnn_agent = a2c.make_agent(config, spec)
rnn_params = jax.jit(rnn_agent.init)(jax.random.key(7), jnp.zeros(obs_shape))

collect = jax.jit(lambda p, s, k: rollout.rollout(rnn_agent, p, env, env_params, s, k, config.num_steps))
state = rollout.init_rollout(env, env_params, rnn_agent, jax.random.key(8), config.num_envs)
for i in range(3):
    state, traj = collect(rnn_params, state, jax.random.key(9 + i))
dist, value = jax.jit(onpolicy.recompute, static_argnums=0)(rnn_agent, rnn_params, traj)
log_prob = dist.log_prob(traj.action)
np.testing.assert_allclose(log_prob, traj.outputs.log_prob, atol=1e-5)
np.testing.assert_allclose(value, traj.outputs.value, atol=1e-5)
print("episode starts inside the fragment:", int(traj.first[1:].sum()),
      "| recomputed log-probs and values match the acting ones")

# %% [markdown]
# **Training.** One thing changes with memory: SaLinA's one-step TD advantage
# (`gae_lambda=0`) leans entirely on the critic's estimate of the next state, and a
# recurrent critic is a poor estimate for a long while; GAE(0.9) mixes in the observed
# rewards. `gae_lambda` is a traced config field, so both settings (two seeds each)
# train in one compiled program:

# %%
lambdas = jnp.array([0.0, 0.0, 0.9, 0.9])
configs = jax.vmap(lambda lam: dataclasses.replace(config, gae_lambda=lam))(lambdas)
result = jax.jit(jax.vmap(a2c.train))(configs, jax.random.split(jax.random.key(0), len(lambdas)))
metrics = jax.device_get(result.metrics)


for i, lam in enumerate(lambdas):
    plt.plot(metrics["env_steps"][i], smooth(metrics["episode_return"][i]),
             color="C0" if lam == 0 else "C1", label=f"gae_lambda {float(lam)}, seed {i % 2}")
plt.xlabel("env steps")
plt.ylabel("episode return")
plt.title("recurrent A2C (GRU) on CartPole-v1, 100-step limit")
plt.legend()
plt.show()

# %% [markdown]
# The trained policies, acting greedily and stochastically on fresh episodes:

# %%
for greedy in (True, False):
    play = jax.jit(jax.vmap(lambda p, k: rollout.evaluate(
        rnn_agent, p, env, env_params, k, num_episodes=10, greedy=greedy)))
    scores, _ = play(result.train_state.params, jax.random.split(jax.random.key(1), len(lambdas)))
    print(f"{'greedy' if greedy else 'stochastic':10s} mean return, lambda 0: "
          f"{np.round(np.asarray(scores[:2].mean(axis=1)), 1)}, lambda 0.9: "
          f"{np.round(np.asarray(scores[2:].mean(axis=1)), 1)}")

# %% [markdown]
# Next: [recurrent value and policy learning](05_recurrent_value_and_policy.ipynb) on an
# env where memory is needed.
