"""The LLC stage's checkpoints: per-run phase steps or common log steps, and its reuse check."""

import dataclasses

import pytest

from grokjax import pipeline as pipe
from grokjax import plan as plan_lib
from grokjax import runio
from grokjax.analysis import phase_steps
from grokjax.errors import ConfigError
from grokjax.plan import PLANS


def test_phase_plans_measure_each_runs_own_phase_steps(tiny_run_dir):
  folder = runio.RunFolder.open(tiny_run_dir)
  plan = dataclasses.replace(PLANS["tiny"], llc_steps="phases")
  got = pipe.llc_steps(folder, plan, [0, 3])
  metrics = folder.metrics()
  for r in (0, 3):
    assert got[r] == phase_steps.run_phase_steps(metrics, r, folder.steps)
    assert set(got[r]) <= set(folder.steps) and got[r][min(got[r])][0] == "init"


def test_log_plans_measure_common_steps_and_label_the_nearest(tiny_run_dir):
  folder = runio.RunFolder.open(tiny_run_dir)
  plan = PLANS["tiny"]
  got = pipe.llc_steps(folder, plan, [0, 1])
  want = sorted(set(folder.log_spaced(plan.llc_points - 1, pipe.FIRST_STEP)) | {0})
  assert sorted(got[0]) == sorted(got[1]) == want
  assert "late" in got[0][want[-1]] and "init" in got[0][0]
  with pytest.raises(ConfigError, match="unknown plan llc_steps 'every'"):
    pipe.llc_steps(folder, dataclasses.replace(plan, llc_steps="every"), [0])


def test_reuse_compares_each_runs_steps_and_needs_the_phase_column(tmp_path):
  rows = [{"run": r, "step": s, "sampler": "sgld", "phase": "init" if s == 0 else "late"}
          for r, steps in ((0, (0, 100)), (1, (0, 300))) for s in steps]
  runio.write_csv(tmp_path / "llc.csv", rows)
  folder = runio.RunFolder(tmp_path, None, (), ())
  done = lambda steps, **kw: pipe._steps_done(folder, "llc", [0, 1], steps, print, **kw)
  assert done({0: [0, 100], 1: [0, 300]}, columns=("phase",), sampler="sgld")
  assert not done({0: [0, 100], 1: [0, 100]})  # run 1 was measured elsewhere
  assert not done([0, 100])  # one common list: run 1 lacks 100
  assert not done({0: [0, 100], 1: [0, 300]}, columns=("diag_ok",))
  assert not done({0: [0, 100], 1: [0, 300]}, sampler="rmsprop_sgld")
  table = runio.read_csv(tmp_path / "llc.csv")
  assert pipe._same_phases(table, {0: {0: ("init",), 100: ("late",)}, 1: {300: ("late",)}})
  assert not pipe._same_phases(table, {0: {100: ("end", "late")}})  # labels moved


def test_an_old_plan_without_llc_steps_reads_as_log_steps():
  old = plan_lib.to_dict(PLANS["demo"])
  del old["llc_steps"]
  assert plan_lib.from_dict(old).llc_steps == "log"  # what such a folder measured
  assert PLANS["demo"].llc_steps == PLANS["cpu-quick"].llc_steps == "phases"
  assert PLANS["demo"].llc_all_seeds and PLANS["cpu-quick"].llc_all_seeds


def test_an_automatic_plan_chooses_each_checkpoints_step_and_reuses_only_its_own(tiny_run_dir,
                                                                                 tmp_path):
  import shutil

  run_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, run_dir)
  folder = runio.RunFolder.open(run_dir)
  grid = (1e-5, 1e-4, 1e-3)
  auto = dataclasses.replace(PLANS["tiny"], llc_step_size=None, llc_step_grid=grid,
                             llc_points=2, llc_all_seeds=False)
  status = pipe.stage_llc(folder, auto, lambda s: None, runs=[0])
  assert status.startswith("done") and "ε chosen per checkpoint" in status
  t = folder.table("llc")
  assert set(t["step_rule"].astype(str)) == {"auto"} and set(t["step_size"]) <= set(grid)
  assert pipe.stage_llc(folder, auto, lambda s: None, runs=[0]) == "reused"
  other = dataclasses.replace(auto, llc_step_grid=(1e-5, 1e-4, 1e-2))  # same length: a cache load
  assert pipe.stage_llc(folder, other, lambda s: None, runs=[0]).startswith("done")
  fixed = dataclasses.replace(auto, llc_step_size=1e-4)
  assert pipe.stage_llc(folder, fixed, lambda s: None, runs=[0]).startswith("done")
  assert set(folder.table("llc")["step_rule"].astype(str)) == {"fixed"}
