import itertools

import jax
import numpy as np
import pytest

from grokjax import tasks
from grokjax.errors import ConfigError

DIRECT = {
    "add": lambda x, y, p: (x + y) % p,
    "sub": lambda x, y, p: (x - y) % p,
    "mul": lambda x, y, p: (x * y) % p,
    "div": lambda x, y, p: (x * pow(y, -1, p)) % p,
    "x2_plus_y2": lambda x, y, p: (x**2 + y**2) % p,
    "x2_plus_xy_plus_y2": lambda x, y, p: (x**2 + x * y + y**2) % p,
    "x2_plus_xy_plus_y2_plus_x": lambda x, y, p: (x**2 + x * y + y**2 + x) % p,
    "x3_plus_xy": lambda x, y, p: (x**3 + x * y) % p,
    "x3_plus_xy2_plus_y": lambda x, y, p: (x**3 + x * y**2 + y) % p,
}


@pytest.mark.parametrize("op", sorted(tasks.OPS))
@pytest.mark.parametrize("p", [7, 13])
def test_table_matches_direct_python(op, p):
  assert set(DIRECT) == set(tasks.OPS)
  inputs, targets = tasks.make_task(op, p)
  pairs = list(itertools.product(range(p), range(1, p)))
  assert inputs.shape == (p * (p - 1), 4) and targets.shape == (p * (p - 1),)
  assert inputs[:, [0, 2]].tolist() == [list(xy) for xy in pairs]
  assert (inputs[:, 1] == p).all() and (inputs[:, 3] == p + 1).all()
  assert targets.tolist() == [DIRECT[op](x, y, p) for x, y in pairs]


def test_div_of_large_prime_is_inverse_of_mul():
  p = 97
  x, y = np.meshgrid(np.arange(p), np.arange(1, p), indexing="ij")
  z = tasks.apply_op("div", x, y, p)
  assert (tasks.apply_op("mul", z, y, p) == x).all()


def test_bad_ops_are_refused_with_the_valid_list():
  with pytest.raises(ConfigError, match="valid ops: add, sub, mul, div"):
    tasks.make_task("pow", 7)
  with pytest.raises(ConfigError, match="prime"):
    tasks.make_task("div", 9)
  tasks.make_task("mul", 9)  # mul is defined for any modulus


def test_split_is_a_seeded_partition():
  p = 11
  a = tasks.split(jax.random.key(3), p, 0.5)
  b = tasks.split(jax.random.key(3), p, 0.5)
  c = tasks.split(jax.random.key(4), p, 0.5)
  n = p * (p - 1)
  assert int(a.is_train.sum()) == tasks.num_train(p, 0.5) == n // 2
  assert sorted(np.asarray(a.order).tolist()) == list(range(n))
  assert (np.asarray(a.is_train) == np.asarray(b.is_train)).all()
  assert (np.asarray(a.is_train) != np.asarray(c.is_train)).any()
  with pytest.raises(ConfigError, match="train_frac"):
    tasks.split(jax.random.key(0), p, 1.0)


def test_stacked_ops_share_one_layout():
  inputs, targets = tasks.stack_tasks(("add", "mul"), 7)
  assert inputs.shape == (2, 42, 4) and targets.shape == (2, 42)
  assert (inputs[0] == inputs[1]).all() and (targets[0] != targets[1]).any()


@pytest.mark.parametrize("p,g", [(7, 3), (11, 2), (23, 5), (47, 5), (97, 5)])
def test_primitive_root_and_discrete_log(p, g):
  assert tasks.primitive_root(p) == g
  # g is the smallest residue whose powers reach every nonzero residue (brute force)
  orders = [len({pow(h, j, p) for j in range(p - 1)}) for h in range(2, g + 1)]
  assert orders[-1] == p - 1 and all(o < p - 1 for o in orders[:-1])
  r = tasks.dlog_residues(p)
  assert [pow(g, j, p) for j in range(p - 1)] == r.tolist()
  assert not r.flags.writeable  # cached: a caller cannot corrupt it
  log = tasks.discrete_log(p)
  x = np.arange(1, p)
  assert log[0] == -1 and np.all(tasks.powmod(g, log[x], p) == x)
  # the re-indexing turns multiplication into addition mod p - 1
  assert np.all(log[x[:, None] * x[None, :] % p] == (log[x][:, None] + log[x][None, :]) % (p - 1))


def test_prime_factors_and_primitive_root_needs_a_prime():
  assert tasks.prime_factors(1) == [] and tasks.prime_factors(96) == [2, 3]
  assert tasks.prime_factors(97) == [97] and tasks.prime_factors(2 * 3 * 3 * 49) == [2, 3, 7]
  with pytest.raises(ConfigError, match="prime"):
    tasks.primitive_root(12)
