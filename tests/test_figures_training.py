"""Accuracy and loss curves: one figure for a sweep's curves.png and the report's Fig. 1."""

import numpy as np

from grokjax import analysis
from grokjax.figures import style, training
from tests.figure_helpers import caught, drawn  # noqa: F401  (a fixture)
from tests.test_analysis import STEPS, synthetic_tables


def test_curves_are_drawn(tmp_path):
  metrics, _ = synthetic_tables(wds=(0.0, 1.0))
  assert drawn(training.curves(metrics, tmp_path / "curves"))


def test_grokking_steps_are_marked(tmp_path, caught):
  """By default each run's first step with test accuracy >= 0.99 gets a vertical line."""
  metrics, _ = synthetic_tables(wds=(0.0, 1.0))
  training.curves(metrics, tmp_path / "curves")
  fig, = caught
  grok = [r["test_acc_099_step"] for r in analysis.grokking_table(metrics)]
  assert np.isfinite(grok).sum() == 4  # weight decay 1 groks, weight decay 0 never
  vertical = {line.get_xdata()[0] for ax in fig.axes for line in ax.get_lines()
              if line.get_linestyle() == ":"}
  assert vertical == {g for g in grok if np.isfinite(g)}
  # 2 ops x (2 weight decays x accuracy, loss); step 0 is drawn at step 1
  assert len(fig.axes) == 8
  x = fig.axes[0].get_lines()[0].get_xdata()
  assert x[0] == 1 and np.all(np.diff(x) >= 0) and x[-1] == STEPS[-1]


def test_xy_sorts_and_moves_step_zero():
  table = {"run": np.array([0, 0, 0, 1]), "step": np.array([10, 0, 5, 0]),
           "v": np.array([3.0, 1.0, np.nan, 7.0])}
  x, y = style.xy(table, 0, "v")
  np.testing.assert_array_equal(x, [1, 10])
  np.testing.assert_array_equal(y, [1.0, 3.0])
