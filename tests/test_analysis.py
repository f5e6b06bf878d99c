"""The analysis package: its re-exported names, and the tidy-table plumbing (`tables`)."""

import numpy as np

from grokjax import analysis, runio, sweep
from grokjax.surrogate import results
from tests.analysis_planted import STEPS, logistic, synthetic_tables  # noqa: F401 (test_report)

# every name report.py, figures.py, experiments/ and the tests call as analysis.NAME
USED = ("METHODS", "WINDOWED", "bootstrap_ci", "correlation_table", "fit_steps",
        "generalisation_step", "grokking_change", "grokking_table", "lead_summary",
        "noise_level", "order_of", "ranking", "ranks", "run_info", "runs_of", "spearman",
        "trajectory", "transition", "transition_step", "transition_table", "verdict",
        "first_step_at", "measure_columns", "crossing_step", "log_axis", "from_log_axis",
        "half_change", "sigmoid_fit", "GROUP_FIELDS")


def test_package_re_exports_every_public_name():
  assert all(callable(getattr(analysis, n)) or n.isupper() for n in USED)
  assert set(USED) <= set(analysis.__all__)
  assert all(hasattr(analysis, n) for n in analysis.__all__)


def test_one_first_step_at_for_sweep_surrogate_and_analysis():
  assert sweep.first_step_at is analysis.first_step_at is results.first_step_at
  steps, acc = np.array([0, 10, 100]), np.array([0.1, 0.995, np.nan])
  assert analysis.first_step_at(steps, acc, 0.99) == 10
  assert isinstance(analysis.first_step_at(steps, acc, 0.99), int)
  assert analysis.first_step_at(steps, np.array([0.1, np.nan, 0.2]), 0.99) is None
  assert analysis.first_step_at(steps, acc, 0.1) == 0


def test_run_fields_are_the_run_columns():
  m, _ = synthetic_tables(ops=("add",))
  assert tuple(analysis.run_info(m, 1)) == runio.RUN_COLUMNS
  assert analysis.run_info(m, 1)["seed"] == 43
  assert analysis.measure_columns(m) == ["train_acc", "test_acc", "train_loss", "test_loss"]


def test_trajectory_and_at_steps():
  t = {"run": np.array([0, 0, 0, 1]), "step": np.array([20, 0, 10, 0]),
       "x": np.array([2.0, 0.0, np.nan, 5.0])}
  steps, values = analysis.trajectory(t, 0, "x")
  assert steps.tolist() == [0, 20] and values.tolist() == [0.0, 2.0]  # sorted, NaN dropped
  np.testing.assert_array_equal(analysis.at_steps(t, 0, "x", np.array([0, 10, 20, 30])),
                                [0.0, np.nan, 2.0, np.nan])
  assert analysis.runs_of(t) == [0, 1]
  assert np.isnan(analysis.at_steps(t, 2, "x", np.array([0, 10]))).all()  # no such run
