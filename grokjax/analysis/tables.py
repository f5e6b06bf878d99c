"""Tidy-table plumbing: runs, run fields, one run's trajectory, first step at a level.

A tidy table is the dict of columns `runio.read_csv` returns (metrics.csv,
measures.csv, llc.csv, ...): one row per run x step, with the run's
`runio.RUN_COLUMNS`. Everything here is pure numpy.

>>> import numpy as np
>>> t = {"run": np.array([0, 0, 1]), "step": np.array([10, 0, 0]),
...      "test_acc": np.array([0.9, 0.1, 0.2])}
>>> runs_of(t), trajectory(t, 0, "test_acc")[1].tolist(), first_step_at([0, 10], [0.1, 0.9], 0.5)
([0, 1], [0.1, 0.9], 10)
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from grokjax.runio import OPTIMIZER_COLUMNS, RUN_COLUMNS

# every column that says which run a row is (the optimizer's only in sweeps that have them)
RUN_KEYS = (*RUN_COLUMNS, *OPTIMIZER_COLUMNS)


def runs_of(table: dict) -> list[int]:
  """The run indices of a tidy table, in order of first appearance."""
  return list(dict.fromkeys(np.asarray(table["run"]).tolist()))


def run_info(table: dict, run: int) -> dict:
  """The run columns (op, seed, weight_decay, ...) of one run, as Python scalars."""
  i = np.flatnonzero(np.asarray(table["run"]) == run)[0]
  return {k: _py(table[k][i]) for k in RUN_KEYS if k in table}


def _py(x):
  return x.item() if isinstance(x, np.generic) else x


def trajectory(table: dict, run: int, column: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps ascending, values) of one run's column, non-finite values dropped."""
  sel = np.asarray(table["run"]) == run
  steps, values = np.asarray(table["step"])[sel], np.asarray(table[column], np.float64)[sel]
  order = np.argsort(steps, kind="mergesort")
  steps, values = steps[order], values[order]
  ok = np.isfinite(values)
  return steps[ok], values[ok]


def measure_columns(table: dict, exclude: Iterable[str] = ()) -> list[str]:
  """The numeric, non-run columns of a tidy table."""
  skip = set(RUN_KEYS) | {"step"} | set(exclude)
  return [k for k, v in table.items() if k not in skip and np.asarray(v).dtype.kind in "fi"]


def first_step_at(steps, values, threshold: float) -> int | None:
  """The first sampled step with values >= threshold (not interpolated), None if none.

  NaN values never count. The one definition of "the step at which train (test)
  accuracy reaches 0.99" that the sweep summary, the surrogate summary and the
  analysis tables share.
  """
  hit = np.flatnonzero(np.asarray(values, np.float64) >= threshold)
  return int(np.asarray(steps)[hit[0]]) if hit.size else None


def nan_if_none(x) -> float:
  """x as a float, NaN for None (table cells that average and subtract)."""
  return np.nan if x is None else float(x)


def at_steps(table: dict, run: int, column: str, steps) -> np.ndarray:
  """One run's column at the given steps, NaN where the table has no such step."""
  s, v = trajectory(table, run, column)
  steps = np.asarray(steps)
  if not s.size:
    return np.full(steps.shape, np.nan)
  idx = np.clip(np.searchsorted(s, steps), 0, s.size - 1)
  return np.where(s[idx] == steps, v[idx], np.nan)
