"""Figures of a surrogate run folder, and the command line end to end."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from grokjax import runio
from grokjax.errors import RunFolderError
from grokjax.figures import surrogate
from grokjax.surrogate import results, train
from tests.figure_helpers import drawn, is_png


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  # the same grid as tests/test_surrogate_train.py: one compilation serves both files
  cfg = train.SurrogateConfig(ops=("add", "mul"), p=11, penalties=(0.0, 1.0), seeds=(0,),
                              steps=60, eval_points=5)
  return results.write_run_folder(cfg, train.train(cfg), tmp_path_factory.mktemp("sfm"))


def test_the_folder_says_which_basis_each_run_lives_in(folder):
  maps = np.load(folder / "maps.npz")
  assert maps["own_basis"].tolist() == ["natural", "natural", "dlog", "dlog"]  # op slowest
  assert maps["moments"].tolist() == list(results.MOMENTS)
  f = surrogate.load(folder)
  assert f.runs == [("add", 0.0, 0), ("add", 1.0, 0), ("mul", 0.0, 0), ("mul", 1.0, 0)]
  assert f.run_index("mul", 1.0, 0) == 3


def test_figure5_and_penalty_sweep_are_drawn(folder, tmp_path):
  assert drawn(surrogate.figure5(folder))
  assert (folder / "figure5.png").is_file()  # the folder's own figure by default
  assert drawn(surrogate.penalty_sweep(folder, tmp_path / "sweep"))


def test_an_older_folder_is_named(folder, tmp_path):
  old = tmp_path / "old"
  old.mkdir()
  for name in ("config.json", "surrogate.csv", "summary.csv"):
    (old / name).write_bytes((folder / name).read_bytes())
  maps = dict(np.load(folder / "maps.npz"))
  del maps["own_basis"]
  np.savez(old / "maps.npz", **maps)
  with pytest.raises(RunFolderError, match="own_basis"):
    surrogate.figure5(old)


def test_comparison_needs_a_transformer_folder(folder, tmp_path):
  assert surrogate.comparison(folder, None) is None
  assert surrogate.comparison(folder, tmp_path) is None  # no metrics.csv there
  rows = [{"run": 0, "op": "add", "seed": 42, "weight_decay": 1.0, "lr": 1e-3, "train_frac": 0.5,
           "step": s, "test_acc": a, "spectral_entropy/all": h}
          for s, a, h in ((0, 0.01, 3.0), (100, 0.02, 2.9), (1000, 0.99, 1.5))]
  runio.write_csv(tmp_path / "metrics.csv", rows)
  runio.write_csv(tmp_path / "llc.csv", [{**r, "llc_mean": 50.0 - r["step"] / 50} for r in rows])
  assert drawn(surrogate.comparison(folder, tmp_path, tmp_path / "cmp"))


def test_pick_penalty_prefers_the_median_positive_one():
  assert surrogate.pick_penalty((0.0, 0.3, 1.0, 3.0), None) == 1.0
  assert surrogate.pick_penalty((0.0,), None) == 0.0
  assert surrogate.pick_penalty((0.0, 0.3, 1.0), 0.25) == 0.3


def test_unit_rescales_to_zero_one():
  np.testing.assert_allclose(surrogate.unit(np.array([2.0, 4.0, np.nan, 3.0])),
                             [0.0, 1.0, np.nan, 0.5])
  np.testing.assert_array_equal(surrogate.unit(np.array([5.0, 5.0])), [0.0, 0.0])


@pytest.mark.slow
def test_the_command_line_writes_a_run_folder(tmp_path):
  out = tmp_path / "cli"
  root = pathlib.Path(__file__).resolve().parents[1]
  cmd = [sys.executable, "-m", "experiments.surrogate", "--ops=sub", "--p=7", "--penalties=1",
         "--seeds=0", "--steps=20", "--eval_points=3", f"--out={out}"]
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, env=env)
  assert done.returncode == 0, done.stderr[-2000:]
  for name in ("config.json", "surrogate.csv", "summary.csv", "maps.npz"):
    assert (out / name).is_file(), name
  for name in ("figure5.png", "penalty_sweep.png"):
    assert is_png(out / name) and (out / name).with_suffix(".pdf").is_file(), name
  again = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, env=env)
  assert again.returncode == 2 and "error:" in again.stderr  # refuses a non-empty folder
