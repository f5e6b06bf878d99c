"""Spectral weight maps of a learned logit table in the group's Fourier basis.

The table T[x, y, z] (logits of every class z for every pair, each row centred over
z because a softmax cannot see a row constant) is transformed by a 3-D DFT, and the
map over the (x, y) frequencies is the power summed over the class frequency c:

    M[a, b] = Σ_c |T̂[a, b, c]|²,   normalised to sum 1.

A group solution T = h(x ± y − z) has T̂ supported on a ≡ ±b (the diagonal for add,
the anti-diagonal for sub), so M is a line; a lookup table spreads its power over the
whole plane. For mul/div the same happens only in the discrete-log basis (x, y, z ∈
Z_p^* re-indexed by log_g, a DFT over Z_{p−1}); in the natural basis their map stays
scattered. Both maps are computed for every run. `entropy` (normalised to [0, 1]) and
`diag_fraction` (the share of power on a ≡ sign·b, in the op's own basis) summarise
them. The y = 0 column is not a task pair; `y0_NxP` fills it in the natural grid (the
training code passes the model's group part there for add/sub, which is defined at
y = 0, and zeros for mul/div); left at zero it would smear each diagonal point into a
line along b. The log grid is complete (x = 0 rows and the z = 0 class are dropped).

>>> import numpy as np
>>> g = GridIndex.for_p(5)
>>> t = np.random.default_rng(0).normal(size=(20, 5)).astype(np.float32)
>>> m = spectral_maps(t, g)
>>> m["natural"].shape, m["dlog"].shape
((5, 5), (4, 4))
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grokjax import tasks

Array = jax.Array


class GridIndex(NamedTuple):
  """Where each task row and class goes in the natural and in the log grids (static)."""

  p: int
  x: np.ndarray  # [N] int
  y: np.ndarray  # [N] int
  log_rows: np.ndarray  # [N'] rows with x != 0
  log_x: np.ndarray  # [N'] log_g x
  log_y: np.ndarray  # [N'] log_g y
  log_classes: np.ndarray  # [p - 1] the classes g^0, g^1, ... (z != 0)

  @classmethod
  def for_p(cls, p: int) -> "GridIndex":
    inputs, _ = tasks.make_task("add", p)  # every op has the same (x, y) rows
    x, y = inputs[:, 0].astype(np.int64), inputs[:, 2].astype(np.int64)
    if tasks.is_prime(p):
      lg = tasks.discrete_log(p)
      rows = np.flatnonzero(x != 0)
      return cls(p, x, y, rows, lg[x[rows]], lg[y[rows]], tasks.dlog_residues(p))
    empty = np.zeros(0, np.int64)
    return cls(p, x, y, empty, empty, empty, empty)


def _plane_power(grid: Array) -> Array:
  power = jnp.sum(jnp.abs(jnp.fft.fftn(grid)) ** 2, axis=2)
  return power / jnp.maximum(jnp.sum(power), 1e-30)


def spectral_maps(table_NxP: Array, g: GridIndex, y0_PxP: Array | None = None) -> dict[str, Array]:
  """{'natural': [p, p], 'dlog': [p − 1, p − 1]} normalised power maps of a logit table
  (rows: the task pairs; `y0_PxP`: optional logits of the pairs (x, 0), x = 0 .. p − 1)."""
  centre = lambda t: t - jnp.mean(t, axis=1, keepdims=True)
  t = centre(table_NxP)
  natural = jnp.zeros((g.p, g.p, g.p), t.dtype).at[g.x, g.y].set(t)
  if y0_PxP is not None:
    natural = natural.at[:, 0].set(centre(y0_PxP))
  out = {"natural": _plane_power(natural)}
  if len(g.log_rows):
    m = g.p - 1
    sub = t[g.log_rows][:, g.log_classes]
    out["dlog"] = _plane_power(jnp.zeros((m, m, m), t.dtype).at[g.log_x, g.log_y].set(sub))
  return out


def map_entropy(power: Array) -> Array:
  """Entropy of a normalised map divided by log(#cells): 1 for flat, 0 for one cell."""
  q = power / jnp.maximum(jnp.sum(power), 1e-30)
  h = -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0))
  return h / np.log(power.size)


def diag_fraction(power: Array, sign: Array | int) -> Array:
  """Share of the map's power on the family a ≡ sign·b (mod its size)."""
  m = power.shape[0]
  a, b = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
  on = (a - sign * b) % m == 0
  return jnp.sum(jnp.where(on, power, 0.0)) / jnp.maximum(jnp.sum(power), 1e-30)
