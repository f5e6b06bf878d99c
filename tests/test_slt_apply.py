"""The LLC over training from a run folder, and the two command-line entry points."""

from __future__ import annotations

import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from grokjax import checkpoint, runio
from grokjax.errors import CheckpointError, ConfigError
from grokjax.slt import apply, llc

SETTINGS = dict(sampler="sgld", step_size=1e-4, localization=100.0, num_chains=2, num_draws=12,
                num_burnin=2, batch_size=64)


def test_choose_steps():
  saved = [0, 1, 2, 4, 40, 80, 120]
  assert apply.choose_steps(saved) == saved
  assert apply.choose_steps(saved, every=40) == [0, 40, 80, 120]
  assert apply.choose_steps(saved, every=50) == [0, 120]  # the last is always kept
  assert apply.choose_steps(saved, steps=[80, 0]) == [0, 80]
  with pytest.raises(CheckpointError, match="no checkpoint at steps"):
    apply.choose_steps(saved, steps=[3])
  with pytest.raises(ConfigError):
    apply.choose_steps(saved, steps=[0], every=40)


def test_over_training_equals_single_estimates(tiny_run_dir):
  cfg = runio.load_config(tiny_run_dir)
  last = checkpoint.list_steps(tiny_run_dir)[-1]
  key = jax.random.key(0)
  rows = apply.llc_over_training(tiny_run_dir, key=key, runs=[1], steps=[0, last],
                                 log=lambda s: None, **SETTINGS)
  assert [r["step"] for r in rows] == [0, last] and {r["run"] for r in rows} == {1}
  assert rows[0]["op"] == cfg.runs[1].op and rows[0]["seed"] == cfg.runs[1].seed
  data = apply.train_data(cfg, 1)
  assert rows[0]["nbeta"] == pytest.approx(len(data[1]) / np.log(len(data[1])))
  # The lax.map over checkpoints runs exactly what estimate_llc runs on one of them.
  params = checkpoint.load_params(tiny_run_dir, last, index=1)
  one = llc.estimate_llc(apply.make_loss_fn(cfg), params, data, key=jax.random.fold_in(key, 1),
                         eval_chunk=cfg.eval_chunk, **SETTINGS)
  assert rows[1]["llc_mean"] == pytest.approx(float(one["llc/mean"]), rel=1e-4, abs=1e-3)
  assert rows[1]["init_loss"] == pytest.approx(float(one["loss/init"]), rel=1e-5)


def _cli(module, *args):
  return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                        timeout=600)


def test_llc_cli_writes_csv_and_figure(tiny_run_dir, tmp_path):
  run_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, run_dir)
  res = _cli("experiments.llc", f"--run_dir={run_dir}", "--runs=0,2", "--every=120",
             "--num_chains=2", "--num_draws=10", "--num_burnin=2", "--batch_size=64")
  assert res.returncode == 0, res.stderr[-2000:]
  table = runio.read_csv(run_dir / "llc.csv")
  assert sorted(set(table["run"].tolist())) == [0, 2]
  assert set(table["step"].tolist()) == {0, 120}
  assert np.all(np.isfinite(table["llc_mean"]))
  assert (run_dir / "llc.png").stat().st_size > 10_000
  bad = _cli("experiments.llc", f"--run_dir={tmp_path / 'nope'}")
  assert bad.returncode == 2 and "not a run folder" in bad.stderr


@pytest.mark.slow
def test_invariance_cli_writes_csv_and_heat_maps(tiny_run_dir, tmp_path):
  run_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, run_dir)
  res = _cli("experiments.llc_invariance", f"--run_dir={run_dir}", "--run=0", "--grid=2",
             "--samplers=sgld,riemannian", "--step_sizes=1e-4,1e-2", "--localizations=100,1",
             "--num_chains=2", "--num_draws=10", "--num_burnin=2", "--batch_size=64")
  assert res.returncode == 0, res.stderr[-2000:]
  table = runio.read_csv(run_dir / "llc_invariance.csv")
  assert len(table["alpha"]) == 2 * 4
  assert set(table["sampler"].tolist()) == {"sgld", "riemannian"}
  for s in ("sgld", "riemannian"):
    assert (run_dir / f"llc_invariance_{s}.png").stat().st_size > 10_000
