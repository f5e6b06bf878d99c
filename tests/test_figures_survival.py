"""Kaplan-Meier curves of grok time: step functions of the curves, '+' at censored runs."""

import numpy as np

from grokjax import analysis
from grokjax.figures import survival
from tests.figure_helpers import caught, drawn  # noqa: F401  (a fixture)
from tests.test_analysis import synthetic_tables


def test_km_curves_are_drawn(tmp_path):
  metrics, _ = synthetic_tables(wds=(0.0, 1.0))
  assert drawn(survival.km_curves(analysis.survival_curves(metrics), tmp_path / "km"))


def test_one_step_line_per_group_and_censored_runs_marked(tmp_path, caught):
  metrics, _ = synthetic_tables(wds=(0.0, 1.0))
  curves = analysis.survival_curves(metrics)
  survival.km_curves(curves, tmp_path / "km")
  (fig,) = caught
  (ax,) = fig.axes
  steps = [ln for ln in ax.get_lines() if ln.get_drawstyle() == "steps-post"]
  plus = [ln for ln in ax.get_lines() if ln.get_marker() == "+"]
  assert len(steps) == len(curves) == 4  # 2 ops x 2 weight decays
  assert ax.get_xscale() == "log"
  for line, c in zip(steps, curves):
    np.testing.assert_array_equal(line.get_xdata(), np.maximum(c["step"], 1))
    np.testing.assert_array_equal(line.get_ydata(), c["survival"])
  # weight decay 0 never groks: both seeds censored at the budget, S stays 1
  censored = [c for c in curves if c["weight_decay"] == 0.0]
  assert len(plus) == 2 and all(len(c["censored_step"]) == 2 for c in censored)
  for line in plus:
    np.testing.assert_array_equal(line.get_ydata(), [1.0, 1.0])
