"""Which runs of a run folder diverged (produced a non-finite loss), read from its files.

A run diverged at the first step where its minibatch loss (`TrainState.diverged_at`)
or its evaluated train loss (metrics.csv) was not finite. summary.csv records that
step in `diverged_at` (empty for a healthy run); folders written before the column
existed are read from metrics.csv instead. Numpy only, so the report can use it.

>>> first_nonfinite_step(np.array([0, 1, 5]), np.array([3.3, np.nan, np.nan]))
1
>>> describe([{"run": 1, "label": "add seed=0", "diverged_at": 1}])
'1 run(s) produced a non-finite loss: run 1 (add seed=0) at step 1'
"""

from __future__ import annotations

import pathlib

import numpy as np

from grokjax import runio

SUMMARY = "summary.csv"
METRICS = "metrics.csv"


def first_nonfinite_step(steps: np.ndarray, values: np.ndarray) -> int | None:
  """The smallest step whose value is not finite, or None."""
  bad = ~np.isfinite(np.asarray(values, float))
  return int(np.min(np.asarray(steps)[bad])) if bad.any() else None


def diverged_step(state_step: int | None, steps: np.ndarray, train_loss: np.ndarray) -> int | None:
  """The earlier of the state's record (None or < 0: none) and the first non-finite train loss."""
  found = [s for s in (state_step, first_nonfinite_step(steps, train_loss))
           if s is not None and s >= 0]
  return min(found) if found else None


def _label(table: dict, i: int) -> str:
  return (f"{table['op'][i]} seed={int(table['seed'][i])} wd={float(table['weight_decay'][i]):g} "
          f"lr={float(table['lr'][i]):g} frac={float(table['train_frac'][i]):g}")


def diverged_runs(run_dir) -> list[dict]:
  """[{run, op, seed, weight_decay, lr, train_frac, label, diverged_at}] of the diverged runs."""
  d = pathlib.Path(run_dir)
  if (d / SUMMARY).is_file():
    s = runio.read_csv(d / SUMMARY)
    if "diverged_at" in s:
      at = s["diverged_at"]
      bad = [i for i in range(len(s["run"])) if str(at[i]) not in ("", "nan")]
      return [_row(s, i, int(float(at[i]))) for i in bad]
  if not (d / METRICS).is_file():
    return []
  m = runio.read_csv(d / METRICS)
  rows = []
  for run in dict.fromkeys(m["run"].tolist()):
    sel = np.flatnonzero(m["run"] == run)
    step = first_nonfinite_step(m["step"][sel], m["train_loss"][sel])
    if step is not None:
      rows.append(_row(m, sel[0], step))
  return sorted(rows, key=lambda r: r["run"])


def _row(table: dict, i: int, step: int) -> dict:
  return {"run": int(table["run"][i]), "op": str(table["op"][i]), "seed": int(table["seed"][i]),
          "weight_decay": float(table["weight_decay"][i]), "lr": float(table["lr"][i]),
          "train_frac": float(table["train_frac"][i]), "label": _label(table, i),
          "diverged_at": step}


def describe(rows: list[dict]) -> str:
  """One line naming each diverged run and its step (rows: run, label, diverged_at)."""
  return (f"{len(rows)} run(s) produced a non-finite loss: "
          + ", ".join(f"run {r['run']} ({r['label']}) at step {r['diverged_at']}" for r in rows))
