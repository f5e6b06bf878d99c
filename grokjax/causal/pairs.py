"""Seeded (clean, corrupted) prompt pairs for activation patching.

A pair shares x and differs in y so that the answers differ: clean `[x, op, y, =]`
with answer a = x op y, corrupted `[x, op, y', =]` with a' = x op y' != a. Both prompts
come from the chosen subset of the example table: the train split, the test split
or all p(p-1) examples (the default).

Sampling: the clean prompt is drawn uniformly from the subset's prompts that have at
least one partner (without replacement while there are enough of them, then with
replacement), and its partner uniformly from the prompts of the subset with the same x
and a different answer. Sampling is host-side numpy (it runs once per run), seeded from
the key's data: the same key gives the same pairs, so a run's pairs can be held fixed
across its checkpoints.

>>> import jax
>>> pairs = sample_pairs("add", 7, 4, key=jax.random.key(0))
>>> bool((pairs.clean[:, 0] == pairs.corrupt[:, 0]).all())          # same x
True
>>> bool((pairs.clean_answer != pairs.corrupt_answer).all())        # answers differ
True
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from grokjax import tasks
from grokjax.errors import ConfigError

SOURCES = ("all", "train", "test")


class Pairs(NamedTuple):
  """n prompt pairs (numpy or jax arrays; stack them on a leading axis for several runs)."""

  clean: np.ndarray  # [n, 4] int32 tokens
  corrupt: np.ndarray  # [n, 4] int32 tokens
  clean_answer: np.ndarray  # [n] int32
  corrupt_answer: np.ndarray  # [n] int32


def subset_mask(p: int, source: str, is_train=None) -> np.ndarray:
  """[p(p-1)] bool: the examples that pairs may be drawn from."""
  if source not in SOURCES:
    raise ConfigError(f"unknown pair source {source!r}; valid: {', '.join(SOURCES)}")
  n = tasks.num_examples(p)
  if source == "all":
    return np.ones(n, bool)
  if is_train is None:
    raise ConfigError(f"pair source {source!r} needs the run's train/test split (is_train)")
  is_train = np.asarray(is_train, bool)
  if is_train.shape != (n,):
    raise ConfigError(f"is_train has shape {is_train.shape}, expected ({n},) for p={p}")
  return is_train if source == "train" else ~is_train


def sample_pairs(op: str, p: int, n: int, *, key: jax.Array, is_train=None,
                 source: str = "all") -> Pairs:
  """n (clean, corrupted) pairs of `op` mod p drawn from `source` ('all', 'train', 'test')."""
  inputs, targets = tasks.make_task(op, p)
  if n < 1:
    raise ConfigError(f"the number of pairs must be >= 1, got {n}")
  member = subset_mask(p, source, is_train).reshape(p, p - 1)
  answer = targets.reshape(p, p - 1).astype(np.int64)  # rows are x, columns y = 1..p-1
  # Partners of (x, y): members of row x whose answer differs = row members - same answer.
  code = np.arange(p)[:, None] * p + answer
  same = np.bincount(code[member], minlength=p * p)[code]
  eligible = member & (member.sum(1, keepdims=True) - same > 0)
  candidates = np.flatnonzero(eligible)
  if candidates.size == 0:
    raise ConfigError(
        f"op {op!r} mod {p}: no two prompts of the {source!r} examples share x and have "
        f"different answers, so no (clean, corrupted) pair exists")
  rng = np.random.default_rng(np.asarray(jax.random.key_data(key)))
  clean = rng.choice(candidates, n, replace=n > candidates.size)
  x, a = clean // (p - 1), answer.reshape(-1)[clean]
  ok = member[x] & (answer[x] != a[:, None])  # [n, p-1] the partners of each clean prompt
  u = rng.random(ok.shape)
  partner = x * (p - 1) + np.argmax(np.where(ok, u, -1.0), axis=1)
  return Pairs(inputs[clean], inputs[partner], targets[clean], targets[partner])
