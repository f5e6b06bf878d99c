"""Figures of a surrogate run folder, and the command line end to end."""

import os
import pathlib
import subprocess
import sys

import pytest

from grokjax import runio
from grokjax.surrogate import plots, results, train


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  # the same grid as tests/test_surrogate_train.py: one compilation serves both files
  cfg = train.SurrogateConfig(ops=("add", "mul"), p=11, penalties=(0.0, 1.0), seeds=(0,),
                              steps=60, eval_points=5)
  return results.write_run_folder(cfg, train.train(cfg), tmp_path_factory.mktemp("sfm"))


def _is_png(path: pathlib.Path) -> bool:
  return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figure5_and_penalty_sweep_are_drawn(folder):
  for path in (plots.figure5(folder), plots.penalty_sweep(folder)):
    assert _is_png(path) and path.with_suffix(".pdf").is_file()


def test_comparison_needs_a_transformer_folder(folder, tmp_path):
  assert plots.comparison(folder, None) is None
  assert plots.comparison(folder, tmp_path) is None  # no metrics.csv there
  rows = [{"run": 0, "op": "add", "seed": 42, "weight_decay": 1.0, "lr": 1e-3, "train_frac": 0.5,
           "step": s, "test_acc": a, "spectral_entropy/all": h}
          for s, a, h in ((0, 0.01, 3.0), (100, 0.02, 2.9), (1000, 0.99, 1.5))]
  runio.write_csv(tmp_path / "metrics.csv", rows)
  runio.write_csv(tmp_path / "llc.csv", [{**r, "llc_mean": 50.0 - r["step"] / 50} for r in rows])
  assert _is_png(plots.comparison(folder, tmp_path))


def test_pick_penalty_prefers_the_median_positive_one():
  assert plots.pick_penalty((0.0, 0.3, 1.0, 3.0), None) == 1.0
  assert plots.pick_penalty((0.0,), None) == 0.0
  assert plots.pick_penalty((0.0, 0.3, 1.0), 0.25) == 0.3


@pytest.mark.slow
def test_the_command_line_writes_a_run_folder(tmp_path):
  out = tmp_path / "cli"
  root = pathlib.Path(__file__).resolve().parents[1]
  cmd = [sys.executable, "-m", "experiments.surrogate", "--ops=sub", "--p=7", "--penalties=1",
         "--seeds=0", "--steps=20", "--eval_points=3", f"--out={out}"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, env=env)
  assert done.returncode == 0, done.stderr[-2000:]
  for name in ("config.json", "surrogate.csv", "summary.csv", "maps.npz", "figure5.png",
               "penalty_sweep.png"):
    assert (out / name).is_file(), name
  again = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, env=env)
  assert again.returncode == 2 and "error:" in again.stderr  # refuses a non-empty folder
