"""The SFM sweep: one vmapped program equals the runs trained alone; records; dynamics."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import runio
from grokjax.errors import ConfigError, RunFolderError
from grokjax.surrogate import model, results, train

TINY = dict(ops=("add", "mul"), p=11, penalties=(0.0, 1.0), seeds=(0,), steps=60, eval_points=5)


@pytest.fixture(scope="module")
def tiny():
  cfg = train.SurrogateConfig(**TINY)
  return cfg, train.train(cfg)


def test_rows_are_tidy_and_finite(tiny):
  cfg, res = tiny
  assert len(res.rows) == len(cfg.runs) * len(cfg.eval_steps)
  assert sorted({r["step"] for r in res.rows}) == cfg.eval_steps.tolist()
  first = res.rows[0]
  for col in ("op", "penalty", "seed", "train_acc", "test_acc", "gates/mem_open",
              "gates/group_open", "complexity/llc", "free_energy", "spectral/entropy",
              "spectral/diag_fraction"):
    assert col in first
  assert all(math.isfinite(r["free_energy"]) for r in res.rows)
  n = res.final_params["mem"]["gate"].shape[1]
  assert first["complexity/llc"] == 0.5 * (n + cfg.p - 1)  # every gate open at step 0
  e, r = len(cfg.eval_steps), len(cfg.runs)
  assert res.maps["natural"].shape == (e, r, cfg.p, cfg.p)
  assert res.maps["dlog"].shape == (e, r, cfg.p - 1, cfg.p - 1)
  np.testing.assert_allclose(res.maps["natural"].sum(axis=(2, 3)), 1.0, rtol=1e-4)


def test_the_vmapped_sweep_equals_each_run_trained_alone(tiny):
  cfg, res = tiny
  data, params = train.build_runs(cfg)
  tx = train.make_optimizer(cfg, int(data.train_rows.shape[1]))

  @jax.jit
  def alone(params, data):
    state = train.SFMState(params, tx.init(params))
    return jax.lax.fori_loop(0, cfg.steps, lambda i, s: train.train_step(tx, s, data), state).params

  for r in range(len(cfg.runs)):
    pick = lambda tree: jax.tree.map(lambda a: a[r], tree)
    got = alone(pick(params), pick(data))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 got, pick(res.final_params))


def test_gates_stay_at_most_one_and_penalty_off_never_closes_a_gate(tiny):
  cfg, res = tiny
  for fam in ("mem", "group"):
    assert float(np.max(res.final_params[fam]["gate"])) <= 1.0
  for r, (op, eta, seed) in enumerate(cfg.runs):
    if eta == 0:
      last = [row for row in res.rows if row["run"] == r][-1]
      assert last["complexity/llc"] == res.rows[r]["complexity/llc"]


def test_run_folder_and_summary(tiny, tmp_path):
  cfg, res = tiny
  out = results.write_run_folder(cfg, res, tmp_path / "sfm")
  record = json.loads((out / "config.json").read_text())
  assert record["config"]["p"] == cfg.p and "jax" in record["versions"]
  assert "git_commit" in record
  assert results.load_config(out) == cfg
  table = runio.read_csv(out / "surrogate.csv")
  assert len(table["step"]) == len(res.rows)
  summary = runio.read_csv(out / "summary.csv")
  assert summary["ref_p2_half"][0] == cfg.p ** 2 / 2
  assert summary["ref_group_family"][0] == (cfg.p - 1) / 2
  maps = np.load(out / "maps.npz")
  assert maps["natural"].shape == (len(cfg.runs), 4, cfg.p, cfg.p)
  assert np.all(np.diff(maps["moment_index"], axis=1) >= 0)
  with pytest.raises(RunFolderError):
    results.write_run_folder(cfg, res, out)


def test_config_validation_and_round_trip():
  cfg = train.SurrogateConfig(**TINY)
  assert train.SurrogateConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
  for bad in (dict(ops=()), dict(ops=("x2_plus_y2",)), dict(penalties=(-1.0,)),
              dict(train_frac=1.0), dict(lr=0.0), dict(crosstalk=1.5), dict(p=9, ops=("div",))):
    with pytest.raises(ConfigError):
      train.SurrogateConfig(**{**TINY, **bad}).validate()
  with pytest.raises(ConfigError):
    train.SurrogateConfig.from_dict({"bogus": 1})


def test_moments_fall_back_to_a_log_midpoint_without_a_switch():
  steps = np.array([0, 1, 10, 100, 1000])
  assert results.moment_index(steps, np.array([0, 1, 1, 1, 1.0]),
                              np.array([0, 0, 0, 0.6, 1.0])) == [0, 1, 3, 4]
  assert results.moment_index(steps, np.array([0, 0, 1, 1, 1.0]), np.zeros(5)) == [0, 2, 3, 4]


@pytest.mark.slow
def test_memorisation_then_a_delayed_switch_only_with_the_occam_gate():
  """Measured, not assumed: p = 23, add, η = 1 against η = 0 (same seed, split, init)."""
  cfg = train.SurrogateConfig(ops=("add",), p=23, penalties=(0.0, 1.0), seeds=(0,), steps=3000,
                              eval_points=40)
  res = train.train(cfg)
  off, on = (results.summarize(cfg, res)[r] for r in (0, 1))
  steps, tr = results.run_series(res.rows, 1, "train_acc")
  _, te = results.run_series(res.rows, 1, "test_acc")
  memorised = (tr >= 0.99) & (te <= 0.2)
  assert memorised.any(), "no memorisation phase"
  assert on["generalised_step"] is not None and on["generalised_step"] > 3 * on["memorised_step"]
  assert on["mem_open_final"] == 0 and on["llc_final"] <= (cfg.p - 1) / 2
  assert on["llc_init"] == 0.5 * (on["n_train"] + cfg.p - 1)
  assert off["generalised_step"] is None and off["test_acc_final"] < 0.5
  assert off["llc_final"] == off["llc_init"]


@pytest.mark.slow
@pytest.mark.parametrize("open_mem,open_group", [(3, (0, 2)), (1, (0,))])
def test_llc_of_the_active_set_matches_the_slt_estimate(open_mem, open_group):
  """λ_A = |A|/2 against grokjax.slt.estimate_llc at a realisable planted point (p = 5)."""
  llc = pytest.importorskip("grokjax.slt.llc")
  data = model.build_data("add", 5, seed=0, penalty=0.0, crosstalk=0.25, init_noise=0.0)
  n, k, rows = data.train_rows.shape[0], data.basis.shape[0], data.targets.shape[0]
  w_mem = np.zeros(n)
  w_mem[:open_mem] = [1.5, -1.0, 2.0][:open_mem]
  w_group = np.zeros(k)
  w_group[list(open_group)] = [1.5, 1.0][:len(open_group)]
  params = model.planted_params(data, w_mem=w_mem, w_group=w_group, gate=0.5)
  params = jax.tree.map(lambda a: jnp.where(a == -1.0, -0.5, a), params)  # closed: γ = −0.5
  expected = float(model.complexity(params)["complexity/llc"])
  assert expected == 0.5 * (open_mem + len(open_group))
  probs = jax.nn.softmax(model.logits(params, data, jnp.arange(rows)))
  samples = 100_000  # labels drawn from the model itself: θ* is the truth
  counts = np.random.default_rng(0).multinomial(samples // rows, np.asarray(probs, np.float64))

  def loss_fn(p, batch):
    (c,) = batch
    lg = model.logits(p, data, jnp.arange(rows))
    return -jnp.sum(c * jax.nn.log_softmax(lg)) / jnp.sum(c)

  out = llc.estimate_llc(loss_fn, params, (jnp.asarray(counts, jnp.float32),),
                         key=jax.random.key(2), step_size=3e-5, localization=10.0,
                         nbeta=samples / math.log(samples), num_chains=4, num_draws=3000,
                         num_burnin=750)
  # all 3·(n + k) = 42 parameters regular would give 21; the active ones regular, 7.5 or 3
  assert abs(float(out["llc/mean"]) - expected) < 0.6
