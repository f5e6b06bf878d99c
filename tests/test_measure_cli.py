"""experiments.measure: measures.csv rows, resuming, adding lenses, one-line errors."""

import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from grokjax import checkpoint, runio
from grokjax.config import SweepConfig
from grokjax.errors import CheckpointError, ConfigError
from grokjax.measures import apply, complexity, spectral
from grokjax.measures.apply import (MEASURES, MeasureOptions, example_subset, measure_run_dir,
                                    read_rows)
from tests.folder_helpers import random_run_folder

CFG = SweepConfig(ops=("mul",), p=7, seeds=(0, 1), weight_decays=(1.0,), steps=4, batch_size=8,
                  eval_every=2, ckpt_every=2, log_points=0, model="tiny")
STEPS = (0, 2, 4)
FAST = dict(n_examples=8, step_batch=2)
LENS_FN = apply.lens_fn


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """A run folder with random parameters saved at STEPS (no training needed)."""
  return random_run_folder(tmp_path_factory.mktemp("sweep"), CFG, STEPS)


def copy(folder, tmp_path) -> pathlib.Path:
  return pathlib.Path(shutil.copytree(folder, tmp_path / "run"))


def measure(path, opts, **kw):
  return measure_run_dir(runio.RunFolder.open(path), opts, **kw)


def test_rows_match_the_lenses_called_directly(folder, tmp_path):
  run = copy(folder, tmp_path)
  # geometry is left out: its compile is the slowest, and tests/test_geometry covers it
  measure(run, MeasureOptions(lenses=("spectral", "fourier", "bdm"), **FAST),
          write=lambda s: None)
  table = runio.read_csv(run / MEASURES)
  assert table["run"].tolist() == [0, 0, 0, 1, 1, 1] and table["step"].tolist() == [*STEPS] * 2
  assert table["seed"].tolist() == [0, 0, 0, 1, 1, 1] and set(table["op"]) == {"mul"}
  assert np.all(table["fourier/dlog_basis"] == 1.0)
  for key in ("occam/class/diag_fraction", "bdm/1d/missing_blocks",
              "block_gzip/total", "effective_rank/all"):
    assert np.all(np.isfinite(table[key])), key
  params = checkpoint.load_params(run, 2, index=1)
  spec = jax.jit(spectral.spectral_measures)(params)
  np.testing.assert_allclose(table["effective_rank/all"][4], spec["effective_rank/all"], rtol=1e-5)
  bdm = complexity.complexity_measures(params)
  assert table["bdm/1d/total"][4] == pytest.approx(bdm["bdm/1d/total"], rel=1e-12)
  assert table["bdm/2d/missing_blocks"][4] == bdm["bdm/2d/missing_blocks"]


def test_example_subset_is_fixed_and_spans_the_table():
  a, ta = example_subset(CFG, "mul", 10, seed=0)
  b, tb = example_subset(CFG, "mul", 10, seed=0)
  np.testing.assert_array_equal(a, b)
  assert len(np.unique(a, axis=0)) == 10 and np.all(ta == (a[:, 0] * a[:, 2]) % CFG.p)
  assert len(example_subset(CFG, "mul", 1000, seed=0)[1]) == CFG.p * (CFG.p - 1)


def test_rerun_skips_measured_rows_and_adds_new_lenses(folder, tmp_path, monkeypatch):
  run, log = copy(folder, tmp_path), []
  opts = lambda **kw: MeasureOptions(**{**FAST, **kw})
  measure(run, opts(lenses=("spectral",), steps=(2,)), write=log.append)
  first = read_rows(run / MEASURES)
  assert sorted(first) == [(0, 2), (1, 2)]
  built = []
  monkeypatch.setattr(apply, "lens_fn", lambda *a: built.append(a) or LENS_FN(*a))
  measure(run, opts(lenses=("spectral",), step_batch=1), write=log.append)
  assert any("1 step(s) already measured" in line for line in log)
  assert len(built) == 1  # two batches, one compiled function
  rows = read_rows(run / MEASURES)
  assert sorted(rows) == [(r, s) for r in (0, 1) for s in STEPS]
  assert rows[(1, 2)]["param_norm"] == first[(1, 2)]["param_norm"]
  measure(run, opts(lenses=("spectral", "bdm"), steps=(4,)), write=log.append)
  rows = read_rows(run / MEASURES)
  assert rows[(1, 4)]["bdm/2d/total"] > 0 and np.isnan(rows[(1, 2)]["bdm/2d/total"])
  assert rows[(1, 2)]["param_norm"] == first[(1, 2)]["param_norm"]
  log.clear()
  measure(run, opts(lenses=("spectral",)), write=log.append)
  assert "3 step(s) already measured" in log[0] and len(log) == 1


def test_bad_input_raises_one_clear_error(folder, tmp_path):
  with pytest.raises(ConfigError, match="unknown lens nope"):
    measure(folder, MeasureOptions(lenses=("nope",)))
  with pytest.raises(CheckpointError, match=r"step\(s\) \[3\] not saved.*saved steps: \[0, 2, 4\]"):
    measure(folder, MeasureOptions(steps=(3,)))
  with pytest.raises(ConfigError, match="--steps or --every"):
    measure(folder, MeasureOptions(every=2, steps=(2,)))
  bare = tmp_path / "bare"
  bare.mkdir()
  shutil.copy(folder / "config.json", bare / "config.json")
  with pytest.raises(CheckpointError, match="no checkpoints"):
    measure(bare, MeasureOptions())


def test_cli_exits_2_with_one_line(folder):
  proc = subprocess.run([sys.executable, "-m", "experiments.measure", f"--run_dir={folder}",
                         "--steps=5"], capture_output=True, text=True, timeout=120,
                        cwd=pathlib.Path(__file__).resolve().parents[1])
  assert proc.returncode == 2
  assert proc.stderr.strip().splitlines()[-1].startswith("error: step(s) [5] not saved")
