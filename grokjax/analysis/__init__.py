"""Grokking analysis on tidy tables: grokking steps, transitions, lead times, grok time.

Pure numpy on the column dicts `runio.read_csv` returns (metrics.csv, measures.csv,
llc.csv, ...: one row per run x step). Nothing here loads a checkpoint. By concern:

  tables       runs, run fields, one run's trajectory, the first step at a threshold
  transitions  the log-step axis, t_gen, and when a measure moves: 'half', 'sigmoid',
               'onset', 'half_all' (definitions in its docstring)
  leads        transition table, lead summary over seeds with bootstrap intervals and
               verdicts, ranking, Spearman correlations, grokking table and change
  survival     grok time as right-censored data: Kaplan-Meier curves, median grok
               step with its interval, fraction grokked by the budget
  phase_steps  one run's checkpoints for init, memorised, onset, middle, end, late
  llc_phases   the LLC per phase label (pooled 95 % interval), memorised vs end / late

Every public name of the first four is re-exported here (the last two are imported
as modules), so `analysis.transition_table(...)` works.

>>> from grokjax import analysis
>>> round(analysis.generalisation_step([0, 10, 100], [0.0, 0.0, 1.0]), 1)  # sqrt(11 * 101) - 1
32.3
"""

from grokjax.analysis.leads import (GROUP_FIELDS, bootstrap_ci, correlation_table, fit_steps,
                                    grokking_change, grokking_table, lead_summary, order_of,
                                    ranking, ranks, spearman, transition_table, verdict)
from grokjax.analysis.survival import (SurvivalFit, grok_times, kaplan_meier, km_median,
                                       survival_at, survival_curves, survival_groups,
                                       survival_table)
from grokjax.analysis.tables import (at_steps, first_step_at, measure_columns, nan_if_none,
                                     run_info, runs_of, trajectory)
from grokjax.analysis.transitions import (METHODS, MIDPOINTS, WINDOWED, crossing_step,
                                          from_log_axis, generalisation_onset,
                                          generalisation_step, half_change, log_axis,
                                          noise_level, onset, sigmoid_fit, transition,
                                          transition_step)

__all__ = [
    "GROUP_FIELDS", "METHODS", "MIDPOINTS", "SurvivalFit", "WINDOWED", "at_steps", "bootstrap_ci",
    "correlation_table", "crossing_step", "first_step_at", "fit_steps", "from_log_axis",
    "generalisation_onset", "generalisation_step", "grok_times", "grokking_change",
    "grokking_table", "half_change", "kaplan_meier", "km_median", "lead_summary", "log_axis",
    "measure_columns", "nan_if_none", "noise_level", "onset", "order_of", "ranking", "ranks",
    "run_info", "runs_of", "sigmoid_fit", "spearman", "survival_at", "survival_curves",
    "survival_groups", "survival_table", "trajectory", "transition", "transition_step",
    "transition_table", "verdict",
]
