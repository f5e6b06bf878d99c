"""The one figure style: rc params, op colours, seed line styles, DPI, log axes, saving.

Every figure draws inside `plt.rc_context(RC)`, colours a run by its op
(`op_colour`), tells seeds apart by line style (`seed_style`), puts steps on a log
axis with step 0 drawn at 1 (`step_axis`, `xy`) and is written by `save` as
`<stem>.png` and `<stem>.pdf` at `DPI`.

>>> # fig, ax = plt.subplots(); ax.plot(*xy(metrics, 0, "test_acc")); save(fig, "out/acc")
"""

from __future__ import annotations

import os
import pathlib
from typing import Sequence

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

from grokjax import analysis  # noqa: E402

OP_COLOURS = {"add": "#1f77b4", "sub": "#d62728", "mul": "#2ca02c", "div": "#9467bd"}
SEED_STYLES = ("-", "--", ":", "-.")
LEVEL_COLOURS = ("#2c7bb6", "#abd9e9", "#fdae61", "#d7191c")  # ordered: low to high quartile
GREEN, RED, GREY = "#1a9641", "#d7191c", "#777777"  # accuracy, complexity, references
RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
      "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False,
      "axes.spines.right": False, "figure.dpi": 100}
DPI = 130


def op_colour(op: str, i: int = 0) -> str:
  """The op's colour; ops without one get a colour by their index `i`."""
  return OP_COLOURS.get(op, f"C{4 + i % 6}")


def seed_style(seeds: Sequence, seed) -> str:
  return SEED_STYLES[list(seeds).index(seed) % len(SEED_STYLES)]


def save(fig, stem: str | os.PathLike) -> list[pathlib.Path]:
  """Writes stem.png and stem.pdf, closes the figure and returns [png, pdf]."""
  stem = pathlib.Path(stem)
  stem.parent.mkdir(parents=True, exist_ok=True)
  paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
  for path in paths:
    fig.savefig(path, dpi=DPI)  # callers lay out first; bbox 'tight' would draw twice
  plt.close(fig)
  return paths


def _short(v: float, _pos=None) -> str:
  """Tick labels without mathtext (which is slow to draw): 1, 10, 100, 1k, 10k, 1e+06."""
  if v <= 0:
    return ""
  if 1e-3 <= v < 1e3:
    return f"{v:g}"
  if 1e3 <= v < 1e6:
    return f"{v / 1e3:g}k"
  return f"{v:.0e}"


def log_axis(ax, which: str = "x") -> None:
  """A log scale with plain major labels and unlabelled minor ticks."""
  axis = ax.xaxis if which == "x" else ax.yaxis
  (ax.set_xscale if which == "x" else ax.set_yscale)("log")
  axis.set_major_formatter(matplotlib.ticker.FuncFormatter(_short))
  # few minor ticks: drawing hundreds of them dominates the report's run time
  axis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2.0, 5.0), numticks=12)
                         if which == "x" else matplotlib.ticker.NullLocator())
  axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def step_axis(ax, label: str = "step") -> None:
  log_axis(ax, "x")
  ax.set_xlabel(label)


def xy(table: dict, run: int, column: str) -> tuple[np.ndarray, np.ndarray]:
  """One run's (steps, values) in step order, step 0 moved to 1 for the log axis."""
  steps, values = analysis.trajectory(table, run, column)
  return np.maximum(steps, 1), values


def layout(table: dict) -> tuple[list[dict], list[str], list[float], list]:
  """(run infos, ops in order of appearance, sorted weight decays, sorted seeds)."""
  runs = [analysis.run_info(table, r) for r in analysis.runs_of(table)]
  ops = list(dict.fromkeys(r["op"] for r in runs))
  wds = sorted({r["weight_decay"] for r in runs})
  seeds = sorted({r["seed"] for r in runs})
  return runs, ops, wds, seeds


def blank(ax) -> None:
  ax.set_xticks([])
  ax.set_yticks([])
