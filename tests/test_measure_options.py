"""measures.csv records each lens's options per row; a re-run with other options (or on a
table that never recorded them) recomputes that lens, with the same options reuses it."""

import pathlib
import shutil

import jax
import numpy as np
import pytest

from grokjax import analysis, checkpoint, runio, train
from grokjax.config import SweepConfig
from grokjax.errors import ConfigError
from grokjax.measures import apply, complexity
from grokjax.measures.apply import (MEASURES, OPTIONS_PREFIX, MeasureOptions, measure_run_dir,
                                    pending, read_rows, write_rows)
from grokjax.model import init_params
from tests.folder_helpers import random_run_folder

CFG = SweepConfig(ops=("mul",), p=7, seeds=(0, 1), weight_decays=(1.0,), steps=4, batch_size=8,
                  eval_every=2, ckpt_every=2, log_points=0, model="tiny")
STEPS = (0, 2, 4)
FAST = dict(n_examples=8, step_batch=3)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """A run folder with random parameters saved at STEPS (no training needed)."""
  return random_run_folder(tmp_path_factory.mktemp("sweep"), CFG, STEPS)


def measure(path, log, **kw):
  return measure_run_dir(runio.RunFolder.open(path), MeasureOptions(**{**FAST, **kw}),
                         write=log.append)


def reference_bdm(path, step, run, levels):
  params = checkpoint.load_params(path, step, index=run)
  return complexity.complexity_measures(params, levels=levels)


@pytest.fixture
def run(folder, tmp_path) -> pathlib.Path:
  return pathlib.Path(shutil.copytree(folder, tmp_path / "run"))


def test_changed_bdm_options_recompute_and_same_options_reuse(run):
  log = []
  measure(run, log, lenses=("bdm",), steps=(2, 4))
  first = read_rows(run / MEASURES)
  assert first[(1, 4)][OPTIONS_PREFIX + "bdm"] == "levels=4 quantise=quantile"
  log.clear()
  measure(run, log, lenses=("bdm",), levels=5)
  assert "measure: levels 4 -> 5: recomputing bdm at 2 step(s)" in log
  assert "0 step(s) already measured" in log[0]
  rows = read_rows(run / MEASURES)
  assert {r[OPTIONS_PREFIX + "bdm"] for r in rows.values()} == {"levels=5 quantise=quantile"}
  want = reference_bdm(run, 4, 1, levels=5)
  assert rows[(1, 4)]["bdm/1d/total"] != first[(1, 4)]["bdm/1d/total"]
  for k in ("bdm/1d/total", "bdm/2d/total", "block_gzip/total", "compress/zlib_bits"):
    assert rows[(1, 4)][k] == pytest.approx(want[k], rel=1e-12), k
  log.clear()
  measure(run, log, lenses=("bdm",), levels=5)
  assert log == ["measure: 3 step(s) x 2 run(s), lenses bdm; 3 step(s) already measured"]
  log.clear()
  measure(run, log, lenses=("bdm",), levels=4, quantise="uniform", steps=(0,))
  assert log[1] == ("measure: levels 5 -> 4, quantise quantile -> uniform: "
                    "recomputing bdm at 1 step(s)")
  assert read_rows(run / MEASURES)[(0, 2)][OPTIONS_PREFIX + "bdm"] == "levels=5 quantise=quantile"


def test_recomputed_lens_drops_the_columns_its_old_options_wrote(run):
  log = []
  measure(run, log, lenses=("spectral", "progress"), steps=(2,), n_key=3)
  before = read_rows(run / MEASURES)[(0, 2)]
  measure(run, log, lenses=("spectral", "progress"), steps=(2,), n_key=2)
  assert "measure: n_key 3 -> 2: recomputing progress at 1 step(s)" in log
  table = runio.read_csv(run / MEASURES)
  assert "progress/key_freq_1" in table and "progress/key_freq_2" not in table
  after = read_rows(run / MEASURES)[(0, 2)]
  assert after["param_norm"] == before["param_norm"]  # spectral has no options: kept
  assert after[OPTIONS_PREFIX + "progress"] == "n_key=2 y0=model"
  assert OPTIONS_PREFIX + "spectral" not in after


def test_tables_without_option_columns_are_recomputed_once(run):
  log = []
  measure(run, log, lenses=("bdm",), steps=(0, 4))
  rows = read_rows(run / MEASURES)
  old = {k: {c: v for c, v in r.items() if not c.startswith(OPTIONS_PREFIX)}
         for k, r in rows.items()}
  write_rows(run / MEASURES, old)  # as written before the option columns
  assert not any(c.startswith(OPTIONS_PREFIX) for c in runio.read_csv(run / MEASURES))
  folder = runio.RunFolder.open(run)
  opts = MeasureOptions(lenses=("bdm",), steps=(0, 4), **FAST)
  assert [s for s, _ in pending(folder, opts)] == [0, 4]
  log.clear()
  measure(run, log, lenses=("bdm",), steps=(0, 4))
  assert ("measure: options not recorded (an older measures.csv): recomputing bdm at 2 step(s)"
          in log)
  assert pending(folder, opts) == []
  assert read_rows(run / MEASURES)[(0, 4)]["bdm/2d/total"] == rows[(0, 4)]["bdm/2d/total"]


def test_pending_follows_the_geometry_options(run):
  opts = lambda **kw: MeasureOptions(lenses=("geometry",), steps=(4,), **{**FAST, **kw})
  recorded = {OPTIONS_PREFIX + "geometry": opts().recorded("geometry"), "geometry/gc": 1.0}
  write_rows(run / MEASURES, {(i, 4): {**runio.run_fields(i, CFG.runs[i]), "step": 4, **recorded}
                              for i in range(len(CFG.runs))})
  folder = runio.RunFolder.open(run)
  assert pending(folder, opts()) == []
  for kw in (dict(n_probes=4), dict(n_examples=9), dict(example_seed=1), dict(gc_method="exact")):
    assert pending(folder, opts(**kw)) == [(4, frozenset({"geometry"}))], kw
  assert pending(folder, opts(step_batch=1, vmap_size=2)) == []  # no effect on the values
  row = read_rows(run / MEASURES)[(0, 4)]
  assert apply.stale_reason(row, "geometry", opts(gc_method="exact")) == (
      "gc_method hutchinson -> exact, n_probes 8 -> unused")
  assert apply.stale_reason(row, "bdm", opts()) == "missing"


def test_option_columns_are_not_measures(run):
  measure(run, [], lenses=("bdm",), steps=(4,))
  table = runio.read_csv(run / MEASURES)
  assert list(table)[len(apply.KEY_COLUMNS)] == OPTIONS_PREFIX + "bdm"
  cols = analysis.measure_columns(table)
  assert "bdm/2d/total" in cols and not any(c.startswith(OPTIONS_PREFIX) for c in cols)


def test_lens_column_namespaces_are_disjoint():
  """_set_lens drops a recomputed lens's old columns by namespace: no two lenses share one."""
  jittable = frozenset(l for l in apply.LENSES if l != "bdm")
  fn = apply.lens_fn(CFG, "mul", jittable, MeasureOptions(n_examples=8))
  stacked = jax.eval_shape(jax.vmap(lambda k: init_params(CFG.model_config, k)),
                           jax.random.split(jax.random.key(0), 1))
  mask = np.asarray(train.run_data(CFG, CFG.runs[0]).is_train)[None]
  scalars = jax.eval_shape(fn, stacked, mask)[0]
  spaces = {l: {k.split("/")[0] for k in d} for l, d in scalars.items()}
  spaces["bdm"] = {k.split("/")[0] for k in complexity.bdm_measures(
      {"w": np.zeros((8, 8), np.int8)})}
  assert set(spaces) == set(apply.LENSES)
  names = [s for v in spaces.values() for s in v]
  assert len(names) == len(set(names)), spaces


def test_bad_measure_options_are_refused():
  for kw, msg in ((dict(lenses=("bdm", "bdm")), "lenses repeated: bdm, bdm"),
                  (dict(n_probes=0), "n_probes must be >= 1, got 0"),
                  (dict(levels=1), r"levels must lie in \[2, 9\]"),
                  (dict(levels=10), r"levels must lie in \[2, 9\]")):
    with pytest.raises(ConfigError, match=msg):
      MeasureOptions(**kw).validate()
