"""Train state and learner: a loss function plus an optax transformation.

State holds data only; behaviour lives in functions (CONVENTIONS.md section 4).
Unlike flax's `TrainState`, no optimizer is stored in the state, so a state built
with a traced learning rate survives `jit(vmap(...))`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rljax import parallel


class TrainState(NamedTuple):
    params: optax.Params
    opt_state: optax.OptState
    step: jax.Array  # number of gradient steps taken


class Learner(NamedTuple):
    init: Callable    # params -> TrainState
    update: Callable  # (TrainState, batch) -> (TrainState, metrics)


def make_learner(loss_fn: Callable, tx: optax.GradientTransformation) -> Learner:
    """`loss_fn(params, batch) -> (loss, metrics)`; one gradient step per `update`.

    Under data parallelism (`rljax.parallel`) the loss is `pmean`ed over devices;
    since the params are replicated, their gradient then arrives already averaged
    over devices (the transpose of the broadcast sums it), so the grads are *not*
    `pmean`ed again (CONVENTIONS.md 8). Params and optimizer state stay identical
    on every device. On one device this is the plain loss.
    """
    local_loss_fn = loss_fn

    def loss_fn(params, batch):
        loss, metrics = local_loss_fn(params, batch)
        return parallel.pmean(loss), metrics

    def init(params) -> TrainState:
        return TrainState(params, tx.init(params), jnp.zeros((), jnp.int32))

    def update(state: TrainState, batch):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, metrics), grads = grad_fn(state.params, batch)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **metrics}
        return TrainState(params, opt_state, state.step + 1), metrics

    return Learner(init, update)
