"""grokjax.slt.dln: Aoyagi's DLN learning coefficient against Aoyagi–Watanabe (2005)."""

from __future__ import annotations

import functools
import itertools

import jax
import numpy as np
import pytest

from grokjax.errors import ConfigError
from grokjax.slt import dln


def _reduced_rank_regression(m, h, n, r):
  """Aoyagi & Watanabe (2005), Main Theorem: input m, hidden h, output n, true rank r."""
  if n + r <= m + h and m + r <= n + h and h + r <= m + n:
    odd = (m + h + n + r) % 2
    return (2 * (h + r) * (m + n) - (m - n) ** 2 - (h + r) ** 2 + odd) / 8
  if m + h < n + r:
    return (h * m - h * r + n * r) / 2
  if n + h < m + r:
    return (h * n - h * r + m * r) / 2
  return m * n / 2


def test_two_kernels_are_reduced_rank_regression():
  cases = 0
  for m, h, n in itertools.product(range(1, 8), repeat=3):
    for r in range(min(m, h, n) + 1):
      assert dln.learning_coefficient((m, h, n), r) == pytest.approx(
          _reduced_rank_regression(m, h, n, r)), (m, h, n, r)
      cases += 1
  assert cases > 500


@pytest.mark.parametrize("widths,rank,expected", [
    ((5, 4, 4, 5), 1, 8.5),     # ℓ = 3, a = 2: every term of the formula is used
    ((4, 4, 4, 4), 1, 6.5),
    ((10, 1, 10, 10), 1, 9.5),  # a rank-1 map through a width-1 bottleneck: (20 − 1)/2
    ((3, 3), 3, 4.5),           # one kernel: regular, d/2
])
def test_deeper_networks(widths, rank, expected):
  assert dln.learning_coefficient(widths, rank) == pytest.approx(expected)
  assert dln.learning_coefficient(widths, rank) <= dln.num_params(widths) / 2


def test_problem_has_the_rank_and_a_zero_loss_minimum():
  p = dln.problem((5, 4, 4, 5), 1, 64, key=jax.random.key(0))
  assert [k.shape for k in p.params] == [(5, 4), (4, 4), (4, 5)]
  product = functools.reduce(np.matmul, [np.asarray(k) for k in p.params])
  assert np.linalg.matrix_rank(product, tol=1e-5) == 1
  assert float(dln.loss(p.params, p.data)) == pytest.approx(0.0, abs=1e-10)
  moved = (p.params[0] + 0.1, *p.params[1:])
  assert float(dln.loss(moved, p.data)) > 1e-3


@pytest.mark.parametrize("widths,rank", [((4,), 1), ((3, 0, 2), 0), ((3, 2), 3), ((3, 2), -1)])
def test_bad_widths_or_rank(widths, rank):
  with pytest.raises(ConfigError):
    dln.learning_coefficient(widths, rank)
