"""The group behind each op, its real characters, and the discrete logarithm.

For x op y = z the group features of the surrogate are functions of one residue

    add/sub:  s = x ± y − z  (mod p),            characters of Z_p
    mul/div:  s = log x ± log y − log z (mod p−1), characters of Z_{p−1} ≅ Z_p^*

where log is the discrete logarithm to a generator g of Z_p^* (it turns × into +).
The real characters are cos(2πks/m) and sin(2πks/m) for k = 1 .. ⌊(m−1)/2⌋, plus
cos(πs) when m is even; the constant character is left out because a softmax
cannot see it. For × and ÷ a character is 0 whenever x = 0 or z = 0 (the Dirichlet
convention χ(0) = 0) and one extra *zero feature* [x = 0][z = 0] carries the absorbing
element. Every op therefore has exactly K = p − 1 group features.

Each (example, class) pair is mapped to a *slot*: slot s in [0, m) holds the residue
above, slot p − 1 (× and ÷ only) the case x = z = 0, slot p the cases where one of x, z
is 0 and the other is not (every feature is 0 there). A group solution is then
`h = w @ basis` ([p + 1] values, one per slot) read out as `h[slots]`.

The discrete logarithm is `tasks.discrete_log` (to the smallest generator, the one
the Fourier lens uses).

>>> basis = character_basis("add", 5)          # [K, p + 1] = [4, 6]
>>> basis.shape, feature_names("mul", 5)
((4, 6), ['cos1', 'sin1', 'cos2', 'zero'])
"""

from __future__ import annotations

import numpy as np

from grokjax import tasks
from grokjax.errors import ConfigError

# op -> (basis, sign of y in the residue)
GROUPS: dict[str, tuple[str, int]] = {
    "add": ("cyclic", 1), "sub": ("cyclic", -1), "mul": ("dlog", 1), "div": ("dlog", -1)}


def check_group_op(op: str, p: int) -> None:
  """Raises ConfigError unless op is a group op of the surrogate, well defined mod p."""
  if op not in GROUPS:
    raise ConfigError(f"the surrogate has group features for {', '.join(GROUPS)} only, "
                      f"got {op!r}")
  tasks.check_op(op, p)
  if GROUPS[op][0] == "dlog" and not tasks.is_prime(p):
    raise ConfigError(f"op {op!r} needs a prime modulus (Z_p^* must be cyclic), got p={p}")


def _frequencies(m: int) -> list[tuple[str, int]]:
  """(kind, k) of the non-constant real characters of Z_m: m − 1 of them."""
  out = []
  for k in range(1, (m - 1) // 2 + 1):
    out += [("cos", k), ("sin", k)]
  if m % 2 == 0:
    out.append(("cos", m // 2))
  return out


def feature_names(op: str, p: int) -> list[str]:
  """Names of the K = p − 1 group features, in basis-row order."""
  check_group_op(op, p)
  m = p if GROUPS[op][0] == "cyclic" else p - 1
  names = [f"{kind}{k}" for kind, k in _frequencies(m)]
  return names + (["zero"] if GROUPS[op][0] == "dlog" else [])


def character_basis(op: str, p: int) -> np.ndarray:
  """[p − 1, p + 1] float32: group feature j takes value basis[j, slot]."""
  check_group_op(op, p)
  cyclic = GROUPS[op][0] == "cyclic"
  m = p if cyclic else p - 1
  s = np.arange(m)
  rows = [np.cos(2 * np.pi * k * s / m) if kind == "cos" else np.sin(2 * np.pi * k * s / m)
          for kind, k in _frequencies(m)]
  basis = np.zeros((p - 1, p + 1), np.float64)
  basis[:len(rows), :m] = np.stack(rows)
  if not cyclic:
    basis[-1, p - 1] = 1.0  # the zero feature [x = 0][z = 0]
  return basis.astype(np.float32)


def row_keys(op: str, p: int) -> np.ndarray:
  """[N] int32 key of each row of `tasks.make_task(op, p)`: x ± y (mod p) for add/sub;
  log x ± log y (mod p − 1) for mul/div, and p − 1 for the rows with x = 0.

  Rows with the same key have the same slot for every class (`key_slots`), so the
  group part of the logits is a [p, p] table indexed by key.
  """
  check_group_op(op, p)
  inputs, _ = tasks.make_task(op, p)
  x, y = inputs[:, 0].astype(np.int64), inputs[:, 2].astype(np.int64)
  kind, sign = GROUPS[op]
  if kind == "cyclic":
    return ((x + sign * y) % p).astype(np.int32)
  lg = tasks.discrete_log(p)
  return np.where(x == 0, p - 1, (lg[x] + sign * lg[y]) % (p - 1)).astype(np.int32)


def key_slots(op: str, p: int) -> np.ndarray:
  """[p, p] int32: the slot of (row key a, class z), see the module docstring."""
  check_group_op(op, p)
  a, z = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
  if GROUPS[op][0] == "cyclic":
    return ((a - z) % p).astype(np.int32)
  lg = tasks.discrete_log(p)
  s = (a - lg[z]) % (p - 1)
  x0, z0 = a == p - 1, z == 0
  return np.where(x0 & z0, p - 1, np.where(x0 | z0, p, s)).astype(np.int32)


def slot_table(op: str, p: int) -> np.ndarray:
  """[N, p] int32: the slot of (example, class z) for the rows of `tasks.make_task(op, p)`."""
  return key_slots(op, p)[row_keys(op, p)]
