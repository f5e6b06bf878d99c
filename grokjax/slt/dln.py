"""Deep linear networks: a singular model whose learning coefficient is known exactly.

A deep linear network (DLN) with widths H_1, ..., H_{L+1} maps x ↦ x·K_1·K_2···K_L
(kernels K_s of shape [H_s, H_{s+1}]). At a true parameter whose product has rank r its
learning coefficient is Aoyagi's (2024, Theorem 1): with Δ_s = H_s − r, let Σ be the ℓ+1
smallest Δ_s (ties kept together) such that

    max_{Σ} Δ < min_{not Σ} Δ,   Σ_Σ Δ ≥ ℓ·max_Σ Δ,   Σ_Σ Δ < ℓ·min_{not Σ} Δ

(so ℓ ≥ 1: with ℓ = 0 the last would need S < 0); then, with S = Σ_Σ Δ and
a = S − (⌈S/ℓ⌉ − 1)·ℓ ∈ [1, ℓ],

    λ = (−r² + r(H_1 + H_{L+1}))/2 + a(ℓ − a)/(4ℓ) − ℓ(ℓ − 1)/4·(S/ℓ)² + ½·Σ_{i<j ∈ Σ} Δ_iΔ_j.

With two kernels this is Aoyagi and Watanabe's (2005) reduced-rank regression
(tests/test_slt_dln.py checks every case up to width 7); reading the third condition as
vacuous for ℓ = 0, as one might, gives λ = 0 for widths (1, 2, 2) at rank 0, where the truth
is 1.

`problem` builds a teacher–student pair: w* a random rank-r factorisation, inputs
x ~ N(0, I) and noise-free targets y = x·K*_1···K*_L, so L_n(w*) = 0 is the minimum of
the loss L(w) = ½·mean‖y − f_w(x)‖² (the Gaussian negative log-likelihood with σ = 1, up
to a constant) and λ̂ estimates λ with no fitting offset.

>>> learning_coefficient((5, 4, 4, 5), rank=1)   # d/2 = 28: far from regular
8.5
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.errors import ConfigError


def _check(widths: Sequence[int], rank: int) -> None:
  if len(widths) < 2 or any(int(h) < 1 for h in widths):
    raise ConfigError(f"widths must be at least two positive layer sizes, got {list(widths)}")
  if not 0 <= rank <= min(widths):
    raise ConfigError(f"rank must lie in [0, {min(widths)}] (the narrowest layer), got {rank}")


def _bottleneck(delta: np.ndarray) -> np.ndarray:
  """Σ: the indices of the ℓ+1 smallest Δ that satisfy Aoyagi's three conditions."""
  order = np.argsort(delta, kind="stable")
  d = delta[order]
  for k in range(2, len(d) + 1):
    ell, top, total = k - 1, d[k - 1], d[:k].sum()
    rest = d[k] if k < len(d) else math.inf
    if top < rest and ell * top <= total < ell * rest:
      return order[:k]
  raise AssertionError("no bottleneck set: Aoyagi's theorem guarantees one")  # unreachable


def learning_coefficient(widths: Sequence[int], rank: int) -> float:
  """λ of a DLN with layer sizes `widths` (input first) at a true product of rank `rank`."""
  _check(widths, rank)
  h = np.asarray(widths, np.int64)
  delta = h - rank
  base = Fraction(int(-rank**2 + rank * (h[0] + h[-1])), 2)
  sigma = delta[_bottleneck(delta)]
  ell = len(sigma) - 1
  total = int(sigma.sum())
  a = total - (-(-total // ell) - 1) * ell
  pairs = (total**2 - int(np.sum(sigma**2))) // 2  # Σ_{i<j} Δ_iΔ_j
  # in exact rationals: λ is a multiple of 1/(4ℓ) and should print as one
  lam = (base + Fraction(a * (ell - a), 4 * ell)
         - Fraction(ell * (ell - 1), 4) * Fraction(total, ell) ** 2 + Fraction(pairs, 2))
  return float(lam)


def num_params(widths: Sequence[int]) -> int:
  return sum(int(a) * int(b) for a, b in zip(widths[:-1], widths[1:]))


class Problem(NamedTuple):
  params: tuple  # w*: the kernels K_s [H_s, H_{s+1}], their product of rank `rank`
  data: tuple  # (x [n, H_1], y [n, H_{L+1}])


def forward(params, x):
  for k in params:
    x = x @ k
  return x


def loss(params, batch):
  """½·mean over the batch of ‖y − f(x)‖²."""
  x, y = batch
  return 0.5 * jnp.mean(jnp.sum((y - forward(params, x)) ** 2, axis=-1))


def problem(widths: Sequence[int], rank: int, n: int, *, key: jax.Array) -> Problem:
  """A random rank-`rank` teacher w* (N(0, 1/fan_in) factors) and n noise-free examples."""
  _check(widths, rank)
  k_first, k_x, *k_rest = jax.random.split(key, len(widths) + 1)
  h = [int(w) for w in widths]
  a, b = jax.random.split(k_first)
  # K_1 = A·B with inner size `rank`: the product has rank ≤ rank, = rank almost surely
  first = (jax.random.normal(a, (h[0], rank)) / math.sqrt(h[0])
           @ jax.random.normal(b, (rank, h[1])) / math.sqrt(max(rank, 1)))
  rest = [jax.random.normal(k, (h[s], h[s + 1])) / math.sqrt(h[s])
          for s, k in zip(range(1, len(h) - 1), k_rest)]
  params = tuple([first, *rest])
  x = jax.random.normal(k_x, (n, h[0]))
  return Problem(params, (x, forward(params, x)))
