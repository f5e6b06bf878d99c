"""Phase diagrams: the grid as one sweep config, its validation, and phases of planted runs."""

import dataclasses
import math

import numpy as np
import pytest

from grokjax import phase, sweep
from grokjax.config import PRESETS
from grokjax.errors import ConfigError

BASE = dataclasses.replace(PRESETS["tiny"], steps=1000)
GRID = phase.GridSpec("weight_decay", "train_frac", (0.0, 1.0, 3.0), (0.4, 0.8), (0, 1))


def test_grid_is_one_sweep_of_every_cell_and_seed():
  cfg = phase.grid_config(BASE, GRID)
  assert len(cfg.runs) == 3 * 2 * 2
  cells = {(s.weight_decay, s.train_frac, s.seed) for s in cfg.runs}
  assert cells == {(x, y, s) for x in GRID.x_values for y in GRID.y_values for s in GRID.seeds}
  lamb = phase.grid_config(BASE, phase.GridSpec("grokfast_lamb", "lr", (0.0, 2.0), (1e-3, 3e-3),
                                                (0,)))
  assert {(s.grokfast_lamb, s.lr) for s in lamb.runs} == {(0.0, 1e-3), (0.0, 3e-3), (2.0, 1e-3),
                                                         (2.0, 3e-3)}


@pytest.mark.parametrize("grid, message", [
    (dataclasses.replace(GRID, x="momentum"), "--x=momentum: unknown field; per-run fields:"),
    (dataclasses.replace(GRID, y="p"), "--y=p: p is the same for every run of a sweep"),
    (dataclasses.replace(GRID, x="steps"), "--x=steps: steps is the same for every run"),
    (dataclasses.replace(GRID, x="seed"), "--x=seed: seed is not a grid axis"),
    (dataclasses.replace(GRID, y="weight_decay"), "--x and --y are both weight_decay"),
    (dataclasses.replace(GRID, x_values=()), "--x_values is empty"),
    (dataclasses.replace(GRID, y_values=(0.4, 0.4)), "--y_values has a duplicate value 0.4"),
    (dataclasses.replace(GRID, seeds=(1, 1)), "--seeds has a duplicate value 1"),
    (dataclasses.replace(GRID, y_values=(0.4, 1.5)), "train_frac must lie in (0, 1)"),
])
def test_bad_grids_raise_one_line_errors(grid, message):
  with pytest.raises(ConfigError) as info:
    phase.grid_config(BASE, grid)
  assert message in str(info.value) and "\n" not in str(info.value)


def test_a_base_axis_with_several_values_is_refused():
  with pytest.raises(ConfigError, match="--lrs has 2 values but lr is not a grid axis"):
    phase.grid_config(dataclasses.replace(BASE, lrs=(1e-3, 3e-3)), GRID)


def test_memory_estimate_counts_the_state_and_refuses_big_grids():
  cfg = phase.grid_config(BASE, GRID)
  per = phase.bytes_per_run(cfg)
  params = 4 * sum(np.size(x) for x in __import__("jax").tree.leaves(
      sweep.stacked_runs(dataclasses.replace(cfg, weight_decays=(1.0,), train_fracs=(0.8,),
                                             seeds=(0,)))[1].params))
  assert per > 5 * params  # params, two Adam moments, grads, updates, ...
  ma = dataclasses.replace(cfg, grokfast_filter="ma", grokfast_lambs=(2.0,), grokfast_windows=(50,))
  assert phase.bytes_per_run(ma) - per >= 50 * params  # the MA ring buffer
  with pytest.raises(ConfigError, match=r"12 runs need .* over the --memory_budget_gb="):
    phase.grid_config(BASE, GRID, budget_bytes=11 * per)
  phase.grid_config(BASE, GRID, budget_bytes=13 * per)


@pytest.mark.parametrize("fit, grok, want", [
    (None, None, "no_learning"), (None, 300, "no_learning"), (400, None, "memorisation"),
    (400, 800, "grokking"), (400, 2000, "grokking"), (400, 750, "comprehension"),
    (400, 400, "comprehension"), (400, 300, "comprehension"), (0, 50, "grokking"),
])
def test_classify_thresholds(fit, grok, want):
  assert phase.classify(fit, grok) == want


def planted_metrics(cfg, curves):
  """metrics.csv columns where run i's train / test accuracy jump to 1 at curves[i]."""
  steps = np.arange(0, cfg.steps + 1, 100)
  cols = {"run": [], "step": [], "train_acc": [], "test_acc": [], "train_loss": []}
  for i, (fit, grok) in enumerate(curves):
    for s in steps:
      cols["run"].append(i)
      cols["step"].append(s)
      cols["train_acc"].append(1.0 if fit is not None and s >= fit else 0.5)
      cols["test_acc"].append(1.0 if grok is not None and s >= grok else 0.02)
      cols["train_loss"].append(0.01 if fit is not None and s >= fit else 2.0)  # finite: healthy
  return {k: np.asarray(v) for k, v in cols.items()}


def test_planted_runs_get_their_phases_and_cells_aggregate_over_seeds():
  grid = phase.GridSpec("weight_decay", "train_frac", (0.0, 1.0, 3.0), (0.4, 0.8), (0, 1, 2))
  cfg = phase.grid_config(BASE, grid)
  # runs are ordered wd, seed, frac: plant per (wd, frac) a phase, seed 2 sometimes differs
  plan = {(0.0, 0.4): [(None, None)] * 3, (0.0, 0.8): [(200, None)] * 3,
          (1.0, 0.4): [(200, 900), (200, 700), (200, None)],
          (1.0, 0.8): [(200, 300), (200, 300), (200, 900)],
          (3.0, 0.4): [(200, 900), (None, None), (200, None)],
          (3.0, 0.8): [(100, 100), (100, 200), (100, 100)]}
  curves = [plan[(s.weight_decay, s.train_frac)][s.seed] for s in cfg.runs]
  summary = sweep.summarize(cfg, planted_metrics(cfg, curves))
  rows = phase.cell_rows(cfg, grid, summary)
  assert len(rows) == 18
  r = next(r for r in rows if (r["weight_decay"], r["train_frac"], r["seed"]) == (1.0, 0.4, 1))
  assert (r["memorisation_step"], r["grok_step"], r["phase"]) == (200, 700, "grokking")
  assert r["final_test_acc"] == 1.0
  miss = next(r for r in rows if (r["weight_decay"], r["train_frac"], r["seed"]) == (1.0, 0.4, 2))
  assert math.isnan(miss["grok_step"]) and miss["phase"] == "memorisation"
  cells = {(c["weight_decay"], c["train_frac"]): c for c in phase.aggregate(rows, grid.x, grid.y)}
  assert len(cells) == 6
  assert {k: c["phase"] for k, c in cells.items()} == {
      (0.0, 0.4): "no_learning", (0.0, 0.8): "memorisation", (1.0, 0.4): "grokking",
      (1.0, 0.8): "comprehension", (3.0, 0.8): "comprehension",
      (3.0, 0.4): "no_learning"}  # a three-way tie goes to the first phase in PHASES
  assert cells[(1.0, 0.4)]["median_grok_step"] == 800.0  # over the two seeds that grokked
  assert cells[(1.0, 0.4)]["n_grokking"] == 2 and cells[(1.0, 0.4)]["n_memorisation"] == 1
  assert math.isnan(cells[(0.0, 0.8)]["median_grok_step"])
