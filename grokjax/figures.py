"""The report's figures, one per paper claim, drawn from tidy tables and saved arrays.

Every function takes columns (the dicts `runio.read_csv` returns, or analysis rows)
or arrays the pipeline computed with the lens functions (embedding coordinates on
Fourier planes, quantised matrices, Occam-gate maps), never a checkpoint, and writes
`<stem>.png` and `<stem>.pdf`. One style everywhere: colour = op, line style = seed,
weight decays side by side as columns, step on a log axis with step 0 drawn at 1.

  curves           Fig. 1: train/test accuracy and loss, grokking step marked
  trajectories     any measure columns vs step beside test accuracy (Fig. 3b, 4 left,
                   5 left, LLC)
  snapshots        arrays at four steps per op x weight decay: 'embedding' (Fig. 3a,
                   Fourier plane or PCA), 'matrix' (Fig. 4 right, 4-level code),
                   'occam' (Fig. 5 right, log 2-D DFT power of the logit table)
  lead_ranking     lead of each measure over generalisation, ranked

>>> # curves(runio.read_csv("runs/demo/metrics.csv"), grok_rows, "runs/demo/report/fig1")
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
RC = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
      "xtick.labelsize": 7, "ytick.labelsize": 7, "axes.spines.top": False,
      "axes.spines.right": False, "figure.dpi": 100}
DPI = 130


def op_colour(op: str, i: int = 0) -> str:
  return OP_COLOURS.get(op, f"C{4 + i % 6}")


def save(fig, stem: str | os.PathLike) -> list[pathlib.Path]:
  """Writes stem.png and stem.pdf and closes the figure."""
  stem = pathlib.Path(stem)
  stem.parent.mkdir(parents=True, exist_ok=True)
  paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
  for path in paths:
    fig.savefig(path, dpi=DPI)  # callers ran tight_layout; bbox 'tight' would draw twice
  plt.close(fig)
  return paths


def _runs(table: dict) -> list[dict]:
  return [analysis.run_info(table, r) for r in analysis.runs_of(table)]


def _seed_style(seeds: Sequence, seed) -> str:
  return SEED_STYLES[list(seeds).index(seed) % len(SEED_STYLES)]


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


def _log_x(ax) -> None:
  log_axis(ax, "x")
  ax.set_xlabel("step")


def _xy(table: dict, run: int, column: str):
  steps, values = analysis.trajectory(table, run, column)
  return np.maximum(steps, 1), values


def _layout(table: dict):
  runs = _runs(table)
  ops = list(dict.fromkeys(r["op"] for r in runs))
  wds = sorted({r["weight_decay"] for r in runs})
  seeds = sorted({r["seed"] for r in runs})
  return runs, ops, wds, seeds


# ---------------------------------------------------------------- Fig. 1

def curves(metrics: dict, grok_rows: list[dict], stem, *, mark: str = "test_acc_099_step"):
  """Fig. 1: accuracy and loss vs step per op (rows) x weight decay (column pairs).

  Train solid-ish (alpha), test bold; colour = seed; a dotted vertical line marks each
  run's `mark` step (the grokking step: test accuracy first >= 0.99).
  """
  runs, ops, wds, seeds = _layout(metrics)
  grok = {r["run"]: r.get(mark, np.nan) for r in grok_rows}
  with plt.rc_context(RC):
    fig, axes = plt.subplots(len(ops), 2 * len(wds), figsize=(3.0 * 2 * len(wds), 2.2 * len(ops)),
                             squeeze=False)
    for r in runs:
      row, col = ops.index(r["op"]), 2 * wds.index(r["weight_decay"])
      c = f"C{seeds.index(r['seed'])}"
      for j, kind in enumerate(("acc", "loss")):
        ax = axes[row, col + j]
        for split, lw, alpha in (("train", 1.0, 0.55), ("test", 1.5, 1.0)):
          ax.plot(*_xy(metrics, r["run"], f"{split}_{kind}"), color=c, lw=lw, alpha=alpha,
                  ls="-" if split == "test" else "--", label=f"seed {r['seed']} {split}")
        if np.isfinite(grok.get(r["run"], np.nan)):
          ax.axvline(max(grok[r["run"]], 1), color=c, ls=":", lw=1)
    for (i, op), (j, wd) in ((a, b) for a in enumerate(ops) for b in enumerate(wds)):
      for k, kind in enumerate(("accuracy", "loss")):
        ax = axes[i, 2 * j + k]
        _log_x(ax)
        ax.set_title(f"{op}, wd {wd:g}: {kind}")
        if kind == "loss":
          log_axis(ax, "y")
        else:
          ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend(loc="center left", ncol=1)
    fig.tight_layout()
    return save(fig, stem)


# ---------------------------------------------------------------- trajectories

def trajectories(panels: Sequence[tuple[dict, str, str]], metrics: dict, stem, *,
                 gen_steps: dict[int, float] | None = None, title: str = ""):
  """Measures vs step (rows) per weight decay (columns), under a test-accuracy row.

  `panels`: (table, column, label) per measure row. Colour = op, line style = seed;
  dotted verticals at each run's generalisation step (test accuracy 0.5) if given.
  """
  runs, ops, wds, seeds = _layout(metrics)
  rows = [(metrics, "test_acc", "test accuracy"), *panels]
  with plt.rc_context(RC):
    fig, axes = plt.subplots(len(rows), len(wds), figsize=(max(3.6 * len(wds), 4.8),
                             1.75 * len(rows)), squeeze=False, sharex=True, sharey="row")
    for i, (table, column, label) in enumerate(rows):
      present = set(analysis.runs_of(table)) if column in table else set()
      for r in (r for r in runs if r["run"] in present):
        ax = axes[i, wds.index(r["weight_decay"])]
        x, y = _xy(table, r["run"], column)
        ax.plot(x, y, color=op_colour(r["op"], ops.index(r["op"])),
                ls=_seed_style(seeds, r["seed"]), lw=1.2, marker="." if x.size < 30 else None,
                ms=3, label=f"{r['op']} seed {r['seed']}")
        if gen_steps and np.isfinite(gen_steps.get(r["run"], np.nan)):
          ax.axvline(max(gen_steps[r["run"]], 1), color=op_colour(r["op"]), ls=":", lw=0.8)
      for j, wd in enumerate(wds):
        axes[i, j].set_title(f"{label} (weight decay {wd:g})", fontsize=7)
        if not present:
          axes[i, j].text(0.5, 0.5, "not measured", ha="center", va="center",
                          transform=axes[i, j].transAxes, color="0.5")
    for ax in axes[-1]:
      _log_x(ax)
    for ax in axes[0]:
      ax.set_ylim(-0.02, 1.02)
    axes[0, -1].legend(loc="upper left", fontsize=6)
    if title:
      fig.suptitle(title)
    fig.tight_layout()
    return save(fig, stem)


# ---------------------------------------------------------------- snapshots

def _embedding_panel(ax, coords_Nx2: np.ndarray) -> None:
  n = coords_Nx2.shape[0]
  colours = plt.get_cmap("twilight")(np.arange(n) / n)
  ax.plot(*np.r_[coords_Nx2, coords_Nx2[:1]].T, color="0.8", lw=0.5)
  ax.scatter(*coords_Nx2.T, c=colours, s=8)
  ax.set_aspect("equal", adjustable="datalim")
  ax.set_xticks([])
  ax.set_yticks([])


def _matrix_panel(ax, codes: np.ndarray) -> None:
  cmap = matplotlib.colors.ListedColormap(LEVEL_COLOURS)
  ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=3.5, interpolation="nearest", aspect="auto")
  ax.set_xticks([])
  ax.set_yticks([])


def _occam_panel(ax, power: np.ndarray) -> None:
  shifted = np.fft.fftshift(power)
  ax.imshow(np.log10(shifted / shifted.max() + 1e-8), cmap="magma", vmin=-6, vmax=0,
            interpolation="nearest")
  ax.set_xticks([])
  ax.set_yticks([])


PANELS = {"embedding": _embedding_panel, "matrix": _matrix_panel, "occam": _occam_panel}


def snapshots(snaps: Sequence[dict], stem, *, kind: str, title: str = ""):
  """Arrays at several steps: rows (op, weight decay, seed), columns the steps in order.

  Each snap: {op, weight_decay, seed, step, array, note (optional, shown in the title)}.
  """
  draw = PANELS[kind]
  rows = list(dict.fromkeys((s["op"], s["weight_decay"], s["seed"]) for s in snaps))
  n_cols = max(sum(1 for s in snaps if (s["op"], s["weight_decay"], s["seed"]) == r) for r in rows)
  size = (1.9, 1.9) if kind != "matrix" else (2.2, 1.6)
  with plt.rc_context(RC):
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(size[0] * n_cols, size[1] * len(rows)),
                             squeeze=False)
    for i, key in enumerate(rows):
      mine = sorted((s for s in snaps if (s["op"], s["weight_decay"], s["seed"]) == key),
                    key=lambda s: s["step"])
      for j, s in enumerate(mine):
        draw(axes[i, j], np.asarray(s["array"]))
        note = f"\n{s['note']}" if s.get("note") else ""
        axes[i, j].set_title(f"{key[0]} wd {key[1]:g} s{key[2]}: step {s['step']}{note}",
                             fontsize=6.5)
      for j in range(len(mine), n_cols):
        axes[i, j].axis("off")
    if kind == "matrix":
      handles = [matplotlib.patches.Patch(color=c, label=f"quartile {k + 1}")
                 for k, c in enumerate(LEVEL_COLOURS)]
      fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    if title:
      fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.03 if kind == "matrix" else 0, 1, 1))
    return save(fig, stem)


# ---------------------------------------------------------------- lead times

def lead_ranking(summary: list[dict], stem, *, method: str = "half", title: str = ""):
  """Lead over generalisation (decades, + = measure first) per measure, op and weight decay.

  Points are group means over seeds with their bootstrap 95 % interval (hollow: timed
  in fewer than two seeds, no interval); measures are ordered by their mean lead over
  every group, untimed ones last and marked; grey band: |lead| < 0.05 decades. Weight
  decays with no timed run (nothing generalised) get no panel; the title lists them.
  """
  rows = [r for r in summary if r["method"] == method]
  timed = [r for r in rows if np.isfinite(r["lead_decades_mean"])]
  wds = sorted({r["weight_decay"] for r in timed})
  empty = sorted({r["weight_decay"] for r in rows} - set(wds))
  ranked = [m for m, *_ in analysis.ranking(rows, method=method)]
  ranked += sorted({r["measure"] for r in rows} - set(ranked))
  ops = list(dict.fromkeys(r["op"] for r in rows))
  with plt.rc_context(RC):
    fig, axes = plt.subplots(1, max(len(wds), 1), figsize=(4.6 * max(len(wds), 1),
                             1.1 + 0.24 * len(ranked)), squeeze=False, sharey=True)
    for j, wd in enumerate(wds):
      _lead_panel(axes[0, j], [r for r in timed if r["weight_decay"] == wd], ranked, ops)
      ax = axes[0, j]
      ax.set_title(f"weight decay {wd:g}")
      ax.set_xlabel("lead = log10(t_gen / t_measure)  (+: measure first)")
      for i, m in enumerate(ranked):
        if not any(r["measure"] == m and r["weight_decay"] == wd for r in timed):
          ax.text(0.01, i, "not timed", transform=ax.get_yaxis_transform(), va="center",
                  fontsize=6, color="0.5")
    if not wds:
      axes[0, 0].text(0.5, 0.5, "no run generalised: no lead to time", ha="center",
                      va="center", transform=axes[0, 0].transAxes, color="0.4")
    axes[0, 0].set_yticks(range(len(ranked)))
    axes[0, 0].set_yticklabels(ranked)
    axes[0, 0].set_ylim(len(ranked) - 0.5, -0.5)
    handles = [matplotlib.lines.Line2D([], [], marker="o", ls="", color=op_colour(op, k), label=op)
               for k, op in enumerate(ops)]
    axes[0, -1].legend(handles=handles, loc="lower right")
    note = (f"\nweight decay {', '.join(f'{w:g}' for w in empty)}: no run generalised"
            if empty else "")
    fig.suptitle(f"{title or f'lead over generalisation ({method} transition)'}{note}",
                 fontsize=8)
    fig.tight_layout()
    return save(fig, stem)


def _lead_panel(ax, rows: list[dict], ranked: list[str], ops: list[str]) -> None:
  ax.axvspan(-0.05, 0.05, color="0.92")
  ax.axvline(0, color="0.5", lw=0.8)
  for k, op in enumerate(ops):
    for r in (r for r in rows if r["op"] == op):
      y = ranked.index(r["measure"]) + (k - (len(ops) - 1) / 2) * 0.15
      mean, lo, hi = r["lead_decades_mean"], r["lead_decades_ci_lo"], r["lead_decades_ci_hi"]
      err = [[mean - lo], [hi - mean]] if np.isfinite(lo) else None
      c = op_colour(op, k)
      ax.errorbar(mean, y, xerr=err, fmt="o", ms=3.5, lw=1, color=c,
                  mfc=c if r["n_timed"] >= 2 else "white")
