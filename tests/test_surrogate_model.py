"""The SFM's analytic parts: characters, planted solutions, the gate penalty, λ_A."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import tasks
from grokjax.errors import ConfigError
from grokjax.surrogate import characters, model

OPS = ("add", "sub", "mul", "div")


@jax.jit
def all_logits(params, data):
  return model.logits(params, data, jnp.arange(data.targets.shape[0]))


def correct(params, data):
  return np.asarray(jax.jit(model.strict_correct)(all_logits(params, data), data.targets))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("p", [7, 11])
def test_the_answer_sits_at_the_residue_zero_slot(op, p):
  inputs, targets = tasks.make_task(op, p)
  slots = characters.slot_table(op, p)
  at_answer = slots[np.arange(len(targets)), targets]
  zero_row = (inputs[:, 0] == 0) & (characters.GROUPS[op][0] == "dlog")
  assert np.all(at_answer == np.where(zero_row, p - 1, 0))
  basis = characters.character_basis(op, p)
  assert basis.shape == (p - 1, p + 1)
  assert len(characters.feature_names(op, p)) == p - 1
  assert np.all(basis[:, p] == 0)  # the "one of x, z is zero" slot carries no feature


def test_group_characters_are_orthogonal_and_non_constant():
  for op in OPS:
    basis = characters.character_basis(op, 11)
    m = 11 if characters.GROUPS[op][0] == "cyclic" else 10
    chars = basis[:, :m] if op in ("add", "sub") else basis[:-1, :m]
    gram = chars @ chars.T
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-4)
    np.testing.assert_allclose(chars.sum(axis=1), 0, atol=1e-4)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("p", [7, 13])
def test_a_pure_fourier_solution_classifies_every_pair(op, p):
  data = model.build_data(op, p, seed=1, penalty=1.0, init_noise=0.0)
  params = model.fourier_solution(data)
  assert correct(params, data).all()
  assert int(model.complexity(params)["gates/mem_open"]) == 0


@pytest.mark.parametrize("op", OPS)
def test_a_pure_lookup_solution_classifies_only_the_training_pairs(op):
  data = model.build_data(op, 11, seed=0, penalty=1.0, crosstalk=0.0, init_noise=0.0)
  ok, tr = correct(model.lookup_solution(data), data), np.asarray(data.is_train)
  assert ok[tr].all() and not ok[~tr].any()


def test_with_crosstalk_a_lookup_is_near_chance_on_test_pairs():
  data = model.build_data("add", 23, seed=0, penalty=1.0, crosstalk=0.25, init_noise=0.0)
  ok, tr = correct(model.lookup_solution(data), data), np.asarray(data.is_train)
  assert ok[tr].all() and ok[~tr].mean() < 3 / 23


def test_the_hot_path_logits_equal_the_general_ones():
  data = model.build_data("mul", 11, seed=3, penalty=1.0, crosstalk=0.3, crosstalk_load=2)
  rng = np.random.default_rng(0)
  params = model.planted_params(data, w_mem=rng.normal(size=data.train_rows.shape[0]),
                                w_group=rng.normal(size=data.basis.shape[0]), gate=0.7)
  general = jax.jit(lambda p, d: model.logits(p, d, d.train_rows))
  np.testing.assert_allclose(jax.jit(model.train_logits)(params, data), general(params, data),
                             atol=1e-5)


def test_strict_correct_counts_a_tie_as_wrong():
  lg = jnp.array([[1.0, 1.0, 0.0], [2.0, 1.0, 0.0]])
  assert model.strict_correct(lg, jnp.array([0, 0])).tolist() == [False, True]


def test_gate_penalty_is_zero_exactly_when_every_gate_is_closed():
  data = model.build_data("add", 7, seed=0, penalty=1.0)
  params = model.init_params(data, key=jax.random.key(0))
  price = data.penalty
  rng = np.random.default_rng(0)
  with_gates = lambda gm, gg: {"mem": dict(params["mem"], gate=jnp.asarray(gm, jnp.float32)),
                               "group": dict(params["group"], gate=jnp.asarray(gg, jnp.float32))}
  n, k = params["mem"]["gate"].shape[0], params["group"]["gate"].shape[0]
  closed = with_gates(-rng.uniform(0, 1, n), -rng.uniform(0, 1, k))
  assert float(model.gate_penalty(closed, price)) == 0.0
  assert float(model.gate_penalty(with_gates(np.zeros(n), np.zeros(k)), price)) == 0.0
  for fam, size in (("mem", n), ("group", k)):
    one_open = jax.tree.map(lambda a: a, closed)
    one_open[fam]["gate"] = one_open[fam]["gate"].at[size // 2].set(1e-3)
    assert float(model.gate_penalty(one_open, price)) > 0.0
  gm, gg = rng.uniform(-1, 1, n), rng.uniform(-1, 1, k)
  expected = float(price) * (np.clip(gm, 0, 1).sum() + np.clip(gg, 0, 1).sum())
  np.testing.assert_allclose(float(model.gate_penalty(with_gates(gm, gg), price)), expected,
                             rtol=1e-5)
  assert float(price) == pytest.approx(math.log(21) / 42)  # λ = η log n / (2n), n = 21


@functools.partial(jax.jit, static_argnames="train_only")
def centred_jacobian(params, data, train_only):
  """d(logits minus their row mean)/d(all parameters), as one [outputs, parameters] matrix."""
  rows = data.train_rows if train_only else jnp.arange(data.targets.shape[0])

  def centred(p):
    lg = model.logits(p, data, rows)
    return (lg - jnp.mean(lg, axis=1, keepdims=True)).reshape(-1)

  jac = jax.jacfwd(centred)(params)
  return jnp.concatenate([j.reshape(j.shape[0], -1) for j in jax.tree.leaves(jac)], axis=1)


def _rank(jac) -> int:
  s = np.linalg.svd(np.asarray(jac, np.float64), compute_uv=False)
  return int(np.sum(s > s[0] * 1e-6))


@pytest.mark.parametrize("op", ["add", "div"])
@pytest.mark.parametrize("crosstalk", [0.0, 0.25])
def test_complexity_proxy_equals_its_closed_form_and_the_jacobian_rank(op, crosstalk):
  data = model.build_data(op, 7, seed=2, penalty=1.0, crosstalk=crosstalk)
  n, k = data.train_rows.shape[0], data.basis.shape[0]
  rng = np.random.default_rng(1)
  for n_mem, n_group in ((0, 3), (5, 0), (7, 4), (n, 1)):
    w_mem = np.zeros(n, np.float32)
    signs = rng.choice([-1, 1], n_mem)
    w_mem[rng.choice(n, n_mem, replace=False)] = rng.uniform(0.5, 2, n_mem) * signs
    w_group = np.zeros(k, np.float32)
    w_group[rng.choice(k, n_group, replace=False)] = rng.uniform(0.5, 2, n_group)
    params = model.planted_params(data, w_mem=w_mem, w_group=w_group, gate=0.6)
    cx = model.complexity(params)
    assert float(cx["complexity/llc"]) == 0.5 * (n_mem + n_group)  # closed form
    assert int(cx["gates/mem_open"]) == n_mem and int(cx["gates/group_open"]) == n_group
    assert _rank(centred_jacobian(params, data, False)) == n_mem + n_group
    assert _rank(centred_jacobian(params, data, True)) == n_mem + n_group


def test_build_data_rejects_bad_input():
  with pytest.raises(ConfigError):
    model.build_data("div", 9, seed=0, penalty=1.0)
  with pytest.raises(ConfigError):
    model.build_data("mul", 9, seed=0, penalty=1.0)  # Z_9^* is not the dlog group of a field
  with pytest.raises(ConfigError):
    model.build_data("x2_plus_y2", 7, seed=0, penalty=1.0)
  with pytest.raises(ConfigError):
    model.build_data("add", 7, seed=0, penalty=-1.0)
  with pytest.raises(ConfigError):
    model.build_data("add", 7, seed=0, penalty=1.0, crosstalk=1.0)
  data = model.build_data("add", 7, seed=0, penalty=1.0)
  with pytest.raises(ConfigError):
    model.planted_params(data, w_mem=25.0, w_group=0.0)  # beyond the weight bound W = 20
