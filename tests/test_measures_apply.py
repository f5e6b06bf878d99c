"""The measure lens on a trained tiny sweep: progress and BDM columns == the lenses called
directly; plans written before the BDM pool was retired still load."""

import json
import pathlib
import shutil

import jax
import numpy as np
import pytest

from grokjax import checkpoint, plan, runio, train
from grokjax.errors import RunFolderError
from grokjax.measures import complexity, progress
from grokjax.measures.apply import MEASURES, MeasureOptions, measure_run_dir

STEPS = (40, 120)


@pytest.fixture(scope="module")
def measured(tiny_run_dir, tmp_path_factory):
  """Progress and BDM measured at two steps, 3 checkpoints per call (one padding step)."""
  run = pathlib.Path(shutil.copytree(tiny_run_dir, tmp_path_factory.mktemp("m") / "run"))
  opts = MeasureOptions(lenses=("progress", "bdm"), steps=STEPS, step_batch=3)
  measure_run_dir(runio.RunFolder.open(run), opts, write=lambda s: None)
  return run, runio.read_csv(run / MEASURES)


def row_of(table, run, step):
  (j,) = np.flatnonzero((table["run"] == run) & (table["step"] == step))
  return {k: v[j] for k, v in table.items()}


def test_progress_columns_equal_progress_measures(measured):
  run, table = measured
  cfg = runio.load_config(run)
  masks = [np.asarray(train.run_data(cfg, spec).is_train) for spec in cfg.runs]
  assert not np.array_equal(masks[0], masks[1])  # a mixed-up run order would show
  assert sorted(set(zip(table["run"].tolist(), table["step"].tolist()))) == [
      (i, s) for i in range(len(cfg.runs)) for s in STEPS]
  for i, spec in enumerate(cfg.runs):
    row = row_of(table, i, STEPS[-1])
    params = checkpoint.load_params(run, STEPS[-1], index=i)
    want = progress.progress_measures(cfg.model_config, params, p=cfg.p, op=spec.op,
                                      train_mask=masks[i], n_key=3)
    scalars = {k: float(v) for k, v in want.items() if np.ndim(v) == 0}
    assert {k for k in table if k.startswith("progress/")} == set(scalars)
    assert {f"progress/key_freq_{k}" for k in range(3)} <= set(scalars)
    for k, v in scalars.items():
      assert row[k] == pytest.approx(v, rel=1e-5, abs=1e-6), (i, k)
    assert np.isfinite(row["progress/restricted_loss"]) and row["progress/dlog_basis"] == (
        spec.op == "mul")


def test_bdm_columns_equal_the_host_reference(measured):
  run, table = measured
  params = checkpoint.load_params(run, STEPS[0], index=3)
  codes = jax.device_get(complexity.quantise_tree(params, levels=4, method="quantile"))
  want = complexity.bdm_measures(codes, levels=4)
  row = row_of(table, 3, STEPS[0])
  assert "block_gzip/total" in want and "compress/zlib_bits" in want
  for k, v in want.items():
    assert row[k] == pytest.approx(v, rel=1e-12), k


def test_plans_written_with_the_retired_workers_field_still_load(tmp_path):
  d = plan.to_dict(plan.PLANS["tiny"])
  (tmp_path / plan.PLAN_FILE).write_text(json.dumps({**d, "workers": 2}))
  assert plan.load(tmp_path) == plan.PLANS["tiny"]
  with pytest.raises(RunFolderError, match="unknown plan fields"):
    plan.from_dict({**d, "bogus": 1})
