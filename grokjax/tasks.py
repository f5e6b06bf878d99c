"""Modular-arithmetic tasks: the ops registry, the full example tables and the splits.

An example is the token sequence `[x, op, y, =]` with vocabulary p + 2 (numbers
0..p-1, then the op token p and the equals token p + 1) and the answer
`(x op y) mod p`, for x in [0, p) and y in [1, p) (y = 0 is excluded for every op,
so there are p(p - 1) examples). Every table is built with vectorised numpy, and
`stack_tasks` lays several ops along a leading axis so that an op is data, not a
branch, inside a compiled sweep.

The number theory the group lenses share lives here too: `powmod`, `is_prime`, and
the discrete logarithm. Z_p^* (p prime) is cyclic of order p - 1; `primitive_root` is
its smallest generator g, `dlog_residues` lists g^0, g^1, ... and `discrete_log`
inverts it, so that log(x y) = log x + log y mod (p - 1).

>>> inputs, targets = make_task("sub", 7)
>>> inputs[0].tolist(), int(targets[0])        # 0 - 1 mod 7
([0, 7, 1, 8], 6)
>>> primitive_root(7), dlog_residues(7).tolist()
(3, [1, 3, 2, 6, 4, 5])
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.errors import ConfigError


def powmod(base, exp, p: int) -> np.ndarray:
  """Elementwise base**exp mod p by repeated squaring (arrays broadcast; int64, exact for
  p < 2**31)."""
  base, exp = np.broadcast_arrays(np.asarray(base, np.int64) % p, np.asarray(exp, np.int64))
  result, base, exp = np.ones_like(base), base.copy(), exp.copy()
  while np.any(exp):
    odd = (exp & 1).astype(bool)
    result = np.where(odd, result * base % p, result)
    base, exp = base * base % p, exp >> 1
  return result


def _div(x, y, p):
  return x * powmod(y, p - 2, p) % p


OPS: dict[str, Callable[[np.ndarray, np.ndarray, int], np.ndarray]] = {
    "add": lambda x, y, p: (x + y) % p,
    "sub": lambda x, y, p: (x - y) % p,
    "mul": lambda x, y, p: x * y % p,
    "div": _div,
    # Power et al. (2022) polynomial tasks.
    "x2_plus_y2": lambda x, y, p: (x * x + y * y) % p,
    "x2_plus_xy_plus_y2": lambda x, y, p: (x * x + x * y + y * y) % p,
    "x2_plus_xy_plus_y2_plus_x": lambda x, y, p: (x * x + x * y + y * y + x) % p,
    "x3_plus_xy": lambda x, y, p: (x * x % p * x + x * y) % p,
    "x3_plus_xy2_plus_y": lambda x, y, p: (x * x % p * x + x * (y * y % p) + y) % p,
}


def is_prime(n: int) -> bool:
  if n < 2:
    return False
  return all(n % d for d in range(2, int(n**0.5) + 1))


def prime_factors(n: int) -> list[int]:
  """The distinct prime factors of n >= 1, ascending."""
  out, d = [], 2
  while d * d <= n:
    if n % d == 0:
      out.append(d)
      while n % d == 0:
        n //= d
    d += 1
  return out + ([n] if n > 1 else [])


def primitive_root(p: int) -> int:
  """The smallest generator g of Z_p^*: g^((p-1)/q) != 1 for every prime q | p - 1."""
  if not is_prime(p):
    raise ConfigError(f"the discrete logarithm needs a prime modulus, got p={p}")
  g = np.arange(2, max(p, 3), dtype=np.int64)
  ok = np.ones(g.shape, bool)
  for q in prime_factors(p - 1):
    ok &= powmod(g, (p - 1) // q, p) != 1
  return 1 if p == 2 else int(g[np.argmax(ok)])


@functools.lru_cache(maxsize=64)
def dlog_residues(p: int) -> np.ndarray:
  """[p - 1] int64 residues by discrete log: entry j is g^j mod p (a permutation of
  1..p-1). Cached, hence read-only: copy it to modify it."""
  out = powmod(primitive_root(p), np.arange(p - 1), p)
  out.setflags(write=False)
  return out


def discrete_log(p: int) -> np.ndarray:
  """[p] int64 table: log_g(x) for x = 1..p-1, and -1 for x = 0."""
  out = np.full(p, -1, np.int64)
  out[dlog_residues(p)] = np.arange(p - 1)
  return out


def check_op(op: str, p: int) -> None:
  """Raises ConfigError unless `op` is a known op that is well defined mod p."""
  if op not in OPS:
    raise ConfigError(f"unknown op {op!r}; valid ops: {', '.join(OPS)}")
  if p < 3:
    raise ConfigError(f"p must be >= 3, got {p}")
  if p >= 2**15:
    raise ConfigError(f"p={p} is too large: the example table has p(p-1) rows")
  if op == "div" and not is_prime(p):
    raise ConfigError(f"op 'div' needs a prime modulus (y must be invertible), got p={p}")


def apply_op(op: str, x, y, p: int) -> np.ndarray:
  """(x op y) mod p, elementwise, as int64."""
  check_op(op, p)
  return OPS[op](np.asarray(x, np.int64), np.asarray(y, np.int64), p)


def num_examples(p: int) -> int:
  return p * (p - 1)


def num_train(p: int, train_frac: float) -> int:
  return int(train_frac * num_examples(p))


def encode(x, y, p: int) -> np.ndarray:
  """Token sequences [x, op, y, =] for arrays x, y of the same shape: [..., 4] int32."""
  x, y = np.broadcast_arrays(np.asarray(x), np.asarray(y))
  op_tok = np.full_like(x, p)
  eq_tok = np.full_like(x, p + 1)
  return np.stack([x, op_tok, y, eq_tok], axis=-1).astype(np.int32)


def make_task(op: str, p: int) -> tuple[np.ndarray, np.ndarray]:
  """All p(p-1) examples of one op: inputs [N, 4] int32, targets [N] int32 (x-major)."""
  check_op(op, p)
  x, y = np.meshgrid(np.arange(p), np.arange(1, p), indexing="ij")
  x, y = x.reshape(-1), y.reshape(-1)
  return encode(x, y, p), apply_op(op, x, y, p).astype(np.int32)


class Split(NamedTuple):
  """A seeded train/test split: `order` is a permutation, the first n_train are train."""

  order: jax.Array  # [N] int32
  is_train: jax.Array  # [N] bool, indexed by example (not by position in `order`)


def split(key: jax.Array, p: int, train_frac: float) -> Split:
  """A uniformly random train/test split of the p(p-1) examples."""
  if not 0.0 < train_frac < 1.0:
    raise ConfigError(f"train_frac must lie in (0, 1), got {train_frac}")
  n = num_examples(p)
  order = jax.random.permutation(key, n).astype(jnp.int32)
  is_train = jnp.zeros(n, bool).at[order[: num_train(p, train_frac)]].set(True)
  return Split(order, is_train)


def stack_tasks(ops: tuple[str, ...] | list[str], p: int) -> tuple[np.ndarray, np.ndarray]:
  """Tables of several ops on one leading axis: inputs [n_ops, N, 4], targets [n_ops, N]."""
  tables = [make_task(op, p) for op in ops]
  return np.stack([t[0] for t in tables]), np.stack([t[1] for t in tables])
