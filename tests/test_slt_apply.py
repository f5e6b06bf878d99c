"""The LLC over training from a run folder, and its command-line entry point."""

from __future__ import annotations

import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from grokjax import checkpoint, runio
from grokjax.errors import CheckpointError, ConfigError
from grokjax.slt import apply, invariance
from grokjax.slt import llc as llc_lib

SETTINGS = dict(sampler="sgld", step_size=1e-4, localization=100.0, num_chains=2, num_draws=12,
                num_burnin=2, batch_size=64)


def test_llc_steps_keep_the_last():
  """llc_over_training's choice of steps: --every keeps the last saved step too."""
  saved = [0, 1, 2, 4, 40, 80, 120]
  choose = lambda **kw: runio.choose_steps(saved, keep_last=True, **kw)
  assert choose() == saved
  assert choose(every=40) == [0, 40, 80, 120]
  assert choose(every=50) == [0, 120]  # the last is always kept
  assert choose(steps=[80, 0]) == [0, 80]
  with pytest.raises(CheckpointError, match=r"step\(s\) \[3\] not saved"):
    choose(steps=[3])
  with pytest.raises(ConfigError):
    choose(steps=[0], every=40)


def llc_over_training(path, **kw):
  return apply.llc_over_training(runio.RunFolder.open(path), **kw)


def _cli(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                        timeout=600)


def test_cli_writes_what_the_library_computes(tiny_run_dir, tmp_path):
  """experiments.llc writes llc.csv and llc.png; its rows are llc_over_training's."""
  cfg = runio.load_config(tiny_run_dir)
  last = checkpoint.list_steps(tiny_run_dir)[-1]
  rows = llc_over_training(tiny_run_dir, key=jax.random.key(0), runs=[1], steps=[0, last],
                                 log=lambda s: None, **SETTINGS)
  assert [r["step"] for r in rows] == [0, last] and {r["run"] for r in rows} == {1}
  assert rows[0]["op"] == cfg.runs[1].op and rows[0]["seed"] == cfg.runs[1].seed
  n = len(apply.train_data(cfg, 1)[1])
  assert rows[0]["nbeta"] == pytest.approx(n / np.log(n))
  assert all(np.isfinite(r["llc_mean"]) and r["diverged"] == 0 for r in rows)

  run_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, run_dir)
  flags = [f"--{k}={v}" for k, v in SETTINGS.items()]
  res = _cli("experiments.llc", f"--run_dir={run_dir}", "--runs=1", f"--steps=0,{last}",
             "--seed=0", *flags)
  assert res.returncode == 0, res.stderr[-2000:]
  table = runio.read_csv(run_dir / "llc.csv")
  np.testing.assert_array_equal(table["step"], [0, last])
  np.testing.assert_allclose(table["llc_mean"], [r["llc_mean"] for r in rows], rtol=1e-4)
  assert (run_dir / "llc.png").stat().st_size > 10_000
  n_failed = sum(not r["diag_ok"] for r in rows)
  assert f"diagnostics: {n_failed} of 2 estimates failed" in res.stdout
  assert set(table["diag_reasons"]) == {r["diag_reasons"] for r in rows}
  bad = _cli("experiments.llc", f"--run_dir={tmp_path / 'nope'}")
  assert bad.returncode == 2 and "not a run folder" in bad.stderr


def test_saturation_flags_chains_that_left_the_basin(tiny_run_dir):
  """A hot sampler walks to chance-level models; a cold one stays at L_n(w*)."""
  cfg = runio.load_config(tiny_run_dir)
  last = checkpoint.list_steps(tiny_run_dir)[-1]
  common = dict(key=jax.random.key(0), runs=[1], steps=[last], log=lambda s: None,
                **{**SETTINGS, "num_draws": 40, "num_burnin": 10})
  hot = llc_over_training(tiny_run_dir, **{**common, "step_size": 1e-2, "localization": 1.0})[0]
  cold = llc_over_training(tiny_run_dir, **{**common, "step_size": 1e-7, "localization": 1e4})[0]
  chance = np.log(cfg.p)
  for row in (hot, cold):
    assert row["chance_loss"] == pytest.approx(chance)
    assert row["sampled_loss"] == pytest.approx(row["init_loss"] + row["llc_mean"] / row["nbeta"])
    level = apply.SATURATION * chance
    assert row["saturated"] == int(row["sampled_loss"] >= level > row["init_loss"])
  assert hot["sampled_loss"] >= apply.SATURATION * chance  # the chains reached chance level
  assert hot["sampled_loss"] > hot["init_loss"] + 0.5
  assert abs(cold["sampled_loss"] - cold["init_loss"]) < 0.05
  # the rule: flagged when a better-than-chance w* gave near-chance samples, and only then
  ln97 = np.log(97)
  assert apply.saturated(0.95 * ln97, 0.1, 97)
  assert not apply.saturated(0.5 * ln97, 0.1, 97)  # chains stayed useful
  assert not apply.saturated(ln97, 0.95 * ln97, 97)  # w* itself at chance: not the sampler
  # the in-program diagnostics agree with the row's saturation rule, in words
  for row in (hot, cold):
    assert isinstance(row["diag_ok"], bool) and isinstance(row["diag_reasons"], str)
    for k in ("diag_slope_z", "diag_rhat", "diag_below_init"):
      assert np.isfinite(row[k]), k
    assert 0.0 <= row["diag_below_init"] <= 1.0 and row["diag_rhat"] > 0
    assert np.isnan(row["diag_accept"]) or 0.0 <= row["diag_accept"] <= 1.0
    assert (row["diag_reasons"] == "ok") <= row["diag_ok"]
    assert (llc_lib.describe(16) in row["diag_reasons"].split("; ")) == bool(row["saturated"])
    if row["saturated"]:
      assert not row["diag_ok"]
  assert apply.SATURATION == llc_lib.DIAG_THRESHOLDS["saturation"]


def test_invariance_cli_writes_what_the_library_computes(tiny_run_dir, tmp_path):
  """invariance_at_checkpoint is rescaling_grid on the loaded run; the CLI writes its rows."""
  folder = runio.RunFolder.open(tiny_run_dir)
  last, cfg = folder.steps[-1], folder.cfg
  grid = dict(alphas=invariance.log_grid(2, 1.0, 2.0), betas=invariance.log_grid(2, 0.5, 2.0))
  common = dict(num_chains=1, num_draws=6, num_burnin=1)
  rows, outs = apply.invariance_at_checkpoint(
      folder, run=1, step=last, key=jax.random.key(0), samplers=[("sgld", 1e-5, 1e3)],
      batch_size=32, log=lambda s: None, **grid, **common)
  data = apply.train_data(cfg, 1)
  direct = invariance.rescaling_grid(
      apply.make_loss_fn(cfg), checkpoint.load_params(tiny_run_dir, last, index=1), data,
      key=jax.random.key(0), sampler="sgld", step_size=1e-5, localization=1e3, batch_size=32,
      **grid, **common)
  np.testing.assert_allclose([r["llc_mean"] for r in rows], direct["llc/mean"], rtol=1e-6)
  assert {(r["run"], r["step"], r["sampler"], r["op"]) for r in rows} == {
      (1, last, "sgld", cfg.runs[1].op)}
  np.testing.assert_allclose([(r["alpha"], r["beta"]) for r in rows],
                             [(1, .5), (1, 2), (2, .5), (2, 2)], rtol=1e-6)

  run_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, run_dir)
  res = _cli("experiments.llc_invariance", f"--run_dir={run_dir}", "--run=1", "--grid=2",
             "--alpha_range=1,2", "--beta_range=0.5,2", "--samplers=sgld", "--step_sizes=1e-5",
             "--localizations=1e3", "--num_chains=1", "--num_draws=6", "--num_burnin=1",
             "--batch_size=32")
  assert res.returncode == 0, res.stderr[-2000:]
  table = runio.read_csv(run_dir / "llc_invariance.csv")
  np.testing.assert_allclose(table["llc_mean"], [r["llc_mean"] for r in rows], rtol=1e-4)
  assert (run_dir / "llc_invariance_sgld.png").stat().st_size > 10_000
  bad = _cli("experiments.llc_invariance", f"--run_dir={run_dir}", "--run=9")
  assert bad.returncode == 2 and "run index(es) [9] not in the folder" in bad.stderr
