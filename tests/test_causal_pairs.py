"""Prompt pairs: shared x, different answers, seeded, drawn from the chosen split."""

import jax
import numpy as np
import pytest

from grokjax import tasks
from grokjax.causal.pairs import sample_pairs
from grokjax.errors import ConfigError

P = 11


@pytest.mark.parametrize("op", ["add", "mul", "div", "x2_plus_y2"])
def test_pairs_share_x_and_have_different_correct_answers(op):
  pr = sample_pairs(op, P, 200, key=jax.random.key(0))
  assert pr.clean.shape == pr.corrupt.shape == (200, 4)
  np.testing.assert_array_equal(pr.clean[:, 0], pr.corrupt[:, 0])
  np.testing.assert_array_equal(pr.clean_answer,
                                tasks.apply_op(op, pr.clean[:, 0], pr.clean[:, 2], P))
  np.testing.assert_array_equal(pr.corrupt_answer,
                                tasks.apply_op(op, pr.corrupt[:, 0], pr.corrupt[:, 2], P))
  assert (pr.clean_answer != pr.corrupt_answer).all()
  assert (pr.clean[:, 2] >= 1).all() and (pr.corrupt[:, 2] >= 1).all()


def test_pairs_are_seeded_and_distinct_while_enough_prompts():
  a = sample_pairs("sub", P, 50, key=jax.random.key(3))
  b = sample_pairs("sub", P, 50, key=jax.random.key(3))
  c = sample_pairs("sub", P, 50, key=jax.random.key(4))
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.clean, c.clean)
  assert len({tuple(r) for r in a.clean}) == 50  # without replacement
  big = sample_pairs("sub", P, 500, key=jax.random.key(3))  # more than P(P-1) = 110 prompts
  assert big.clean.shape == (500, 4)


def test_pairs_come_from_the_chosen_split():
  is_train = np.asarray(tasks.split(jax.random.key(0), P, 0.5).is_train)
  inputs, _ = tasks.make_task("add", P)
  index = {tuple(r): i for i, r in enumerate(inputs)}
  for source, want in (("train", True), ("test", False)):
    pr = sample_pairs("add", P, 100, key=jax.random.key(1), is_train=is_train, source=source)
    for toks in (pr.clean, pr.corrupt):
      assert all(is_train[index[tuple(r)]] == want for r in toks)


def test_every_partner_is_reachable():
  pr = sample_pairs("add", 5, 2000, key=jax.random.key(2))
  seen = {(int(c[0]), int(c[2]), int(d[2])) for c, d in zip(pr.clean, pr.corrupt)}
  assert len(seen) == 5 * 4 * 3  # every x, every y, every y' != y (add: answers differ iff y' != y)


def test_bad_requests_raise_one_clear_error():
  with pytest.raises(ConfigError, match="no two prompts"):
    one_per_row = np.zeros(P * (P - 1), bool)
    one_per_row[:: P - 1] = True
    sample_pairs("add", P, 4, key=jax.random.key(0), is_train=one_per_row, source="train")
  with pytest.raises(ConfigError, match="needs the run's train/test split"):
    sample_pairs("add", P, 4, key=jax.random.key(0), source="test")
  with pytest.raises(ConfigError, match="unknown pair source"):
    sample_pairs("add", P, 4, key=jax.random.key(0), source="val")
  with pytest.raises(ConfigError, match="prime"):
    sample_pairs("div", 12, 4, key=jax.random.key(0))
