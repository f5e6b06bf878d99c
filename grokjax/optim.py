"""Grokfast gradient filters and Omnigrok's weight-norm constraint as optax transforms.

Each transform is wrapped in `optax.inject_hyperparams` by `train.make_optimizer`, so
its hyperparameters (alpha, lamb, window, target norm) live in the optimizer state
as arrays and differ per run on a sweep's stacked runs axis, like lr and weight decay.

- `grokfast_ema` (Lee et al. 2024, "Grokfast", their `gradfilter_ema`): the filter
  state is an EMA of the raw gradients, started at the first gradient,
  ema_0 = g_0, ema_t = alpha ema_{t-1} + (1 - alpha) g_t, and the step sees
  g_t + lamb ema_t. lamb = 0 is plain AdamW, bit for bit.
- `grokfast_ma` (their `gradfilter_ma` with warmup): the step sees
  g_t + lamb mean(g_{t-w+1..t}) once w gradients have been seen, g_t before. The
  window w is per-run data under a static buffer length `max_window`: every run keeps
  a ring buffer of the last `max_window` gradients (memory: max_window x parameters
  floats per run) and averages its own last w of them.
- `fixed_weight_norm` (Liu et al. 2023, "Omnigrok"): returns the updates that land
  the parameters on the sphere of total L2 norm `target`, i.e. after each step the
  parameters are rescaled to that norm; target = 0 leaves the updates as they are.

>>> # tx = optax.chain(grokfast_ema(alpha=0.98, lamb=2.0), optax.adamw(1e-3))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

Array = jax.Array


class EmaState(NamedTuple):
  count: Array  # [] int32, gradients seen
  ema: optax.Updates  # like params


class MaState(NamedTuple):
  count: Array  # [] int32, gradients seen
  buffer: optax.Updates  # like params with a leading [max_window] ring axis


def grokfast_ema(alpha: float | Array, lamb: float | Array) -> optax.GradientTransformation:
  """Grokfast-EMA: g <- g + lamb * ema, with ema <- alpha ema + (1 - alpha) g (ema_0 = g_0)."""

  def init(params):
    return EmaState(jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params))

  def update(updates, state, params=None):
    del params
    first = state.count == 0
    ema = jax.tree.map(lambda m, g: jnp.where(first, g, alpha * m + (1 - alpha) * g),
                       state.ema, updates)
    out = jax.tree.map(lambda g, m: jnp.where(lamb > 0, g + lamb * m, g), updates, ema)
    return out, EmaState(optax.safe_increment(state.count), ema)

  return optax.GradientTransformation(init, update)


def grokfast_ma(window: int | Array, lamb: float | Array,
                max_window: int) -> optax.GradientTransformation:
  """Grokfast-MA: g <- g + lamb * mean of the last `window` gradients (once that many exist).

  `max_window` (static) is the ring buffer's length; `window` (<= max_window) may be a
  traced per-run value.
  """

  def init(params):
    return MaState(jnp.zeros([], jnp.int32),
                   jax.tree.map(lambda p: jnp.zeros((max_window, *p.shape), p.dtype), params))

  def update(updates, state, params=None):
    del params
    slot = state.count % max_window
    age_W = (state.count - jnp.arange(max_window)) % max_window  # steps since each slot's write
    in_window_W = age_W < window
    full = state.count + 1 >= window

    def one(g, buf):
      buf = jax.lax.dynamic_update_index_in_dim(buf, g, slot, 0)
      mean = jnp.tensordot(in_window_W.astype(g.dtype), buf, axes=1) / window
      return jnp.where(full, g + lamb * mean, g), buf

    pairs = jax.tree.map(one, updates, state.buffer)
    out = jax.tree.map(lambda _, pair: pair[0], updates, pairs)
    buffer = jax.tree.map(lambda _, pair: pair[1], updates, pairs)
    return out, MaState(optax.safe_increment(state.count), buffer)

  return optax.GradientTransformation(init, update)


def scale_to_norm(params, target: float | Array):
  """params rescaled to total L2 norm `target` (unchanged where target is 0)."""
  scale = jnp.where(target > 0, target / optax.tree.norm(params), 1.0)
  return jax.tree.map(lambda p: (p * scale).astype(p.dtype), params)


def fixed_weight_norm(target: float | Array) -> optax.GradientTransformation:
  """Updates u' with params + u' = (params + u) * target / |params + u| (target 0: u' = u).

  The last transform of a chain: it projects the step's result onto the sphere of
  radius `target`, so `optax.apply_updates` lands there up to one rounding.
  """

  def init(params):
    del params
    return optax.EmptyState()

  def update(updates, state, params=None):
    if params is None:
      raise ValueError("fixed_weight_norm needs params")
    moved = optax.apply_updates(params, updates)
    on_sphere = scale_to_norm(moved, target)
    out = jax.tree.map(lambda s, p, u: jnp.where(target > 0, s - p, u), on_sphere, params, updates)
    return out, state

  return optax.GradientTransformation(init, update)
