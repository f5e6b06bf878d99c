"""Measures of the lenses against training: trajectories, snapshots, the lead ranking.

  trajectories   measure columns vs step beside test accuracy (Fig. 3b, 4 left, 5 left,
                 the LLC)
  snapshots      arrays at four steps per op x weight decay: 'embedding' (Fig. 3a,
                 Fourier plane or PCA), 'matrix' (Fig. 4 right, 4-level code),
                 'occam' (Fig. 5 right, log 2-D DFT power of the logit table)
  lead_ranking   lead of each measure over generalisation, ranked

>>> # trajectories([(measures, "bdm/2d/total", "BDM")], metrics, "report/figures/fig4_bdm")
"""

from __future__ import annotations

from typing import Sequence

import matplotlib
import numpy as np

from grokjax import analysis
from grokjax.figures import style
from grokjax.figures.style import plt

# ---------------------------------------------------------------- trajectories

def trajectories(panels: Sequence[tuple[dict, str, str]], metrics: dict | None, stem, *,
                 gen_steps: dict[int, float] | None = None, title: str = "",
                 spread: dict[str, str] | None = None, hollow: dict[str, str] | None = None):
  """Measures vs step (rows) per weight decay (columns), under a test-accuracy row; [png, pdf].

  `panels`: (table, column, label) per measure row. Colour = op, line style = seed;
  dotted verticals at each run's generalisation step (test accuracy 0.5) if given;
  `spread` maps a column to the column of its ± band (e.g. llc_mean -> llc_std);
  `hollow` maps a column to a 0/1 column: its points where that is 1 get hollow markers,
  the others filled ones (e.g. llc_mean -> estimates that failed their diagnostics).
  Without `metrics` there is no accuracy row and the runs are the first panel's.
  """
  runs, ops, wds, seeds = style.layout(metrics if metrics is not None else panels[0][0])
  rows = [*([(metrics, "test_acc", "test accuracy")] if metrics is not None else []), *panels]
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(len(rows), len(wds), figsize=(max(3.6 * len(wds), 4.8),
                             1.75 * len(rows)), squeeze=False, sharex=True, sharey="row")
    for i, (table, column, label) in enumerate(rows):
      present = set(analysis.runs_of(table)) if column in table else set()
      for r in (r for r in runs if r["run"] in present):
        _trajectory(axes[i, wds.index(r["weight_decay"])], table, column, r, ops, seeds,
                    (spread or {}).get(column), (hollow or {}).get(column))
        if gen_steps and np.isfinite(gen_steps.get(r["run"], np.nan)):
          axes[i, wds.index(r["weight_decay"])].axvline(
              max(gen_steps[r["run"]], 1), color=style.op_colour(r["op"]), ls=":", lw=0.8)
      for j, wd in enumerate(wds):
        axes[i, j].set_title(f"{label} (weight decay {wd:g})", fontsize=7)
        if not present:
          axes[i, j].text(0.5, 0.5, "not measured", ha="center", va="center",
                          transform=axes[i, j].transAxes, color="0.5")
    for ax in axes[-1]:
      style.step_axis(ax)
    if metrics is not None:
      for ax in axes[0]:
        ax.set_ylim(-0.02, 1.02)
    axes[0, -1].legend(loc="upper left", fontsize=6)
    if title:
      fig.suptitle(title)
    fig.tight_layout()
    return style.save(fig, stem)


def _trajectory(ax, table: dict, column: str, r: dict, ops: list, seeds: list,
                band: str | None, hollow: str | None = None) -> None:
  x, y = style.xy(table, r["run"], column)
  c = style.op_colour(r["op"], ops.index(r["op"]))
  ax.plot(x, y, color=c, ls=style.seed_style(seeds, r["seed"]), lw=1.2,
          marker="." if x.size < 30 and hollow is None else None, ms=3,
          label=f"{r['op']} seed {r['seed']}")
  if hollow is not None:
    xs, flag = style.xy(table, r["run"], hollow)
    bad = np.isin(x, xs[flag > 0])
    ax.plot(x[~bad], y[~bad], "o", color=c, ms=3, ls="none")
    ax.plot(x[bad], y[bad], "o", color=c, ms=4, ls="none", markerfacecolor="none", mew=0.8)
  if band is not None:
    xs, s = style.xy(table, r["run"], band)
    if np.array_equal(xs, x):  # the band only where both columns are finite
      ax.fill_between(x, y - s, y + s, color=c, alpha=0.2, lw=0)


# ---------------------------------------------------------------- snapshots

def _embedding_panel(ax, coords_Nx2: np.ndarray) -> None:
  n = coords_Nx2.shape[0]
  colours = plt.get_cmap("twilight")(np.arange(n) / n)
  ax.plot(*np.r_[coords_Nx2, coords_Nx2[:1]].T, color="0.8", lw=0.5)
  ax.scatter(*coords_Nx2.T, c=colours, s=8)
  ax.set_aspect("equal", adjustable="datalim")
  style.blank(ax)


def _matrix_panel(ax, codes: np.ndarray) -> None:
  cmap = matplotlib.colors.ListedColormap(style.LEVEL_COLOURS)
  ax.imshow(codes, cmap=cmap, vmin=-0.5, vmax=3.5, interpolation="nearest", aspect="auto")
  style.blank(ax)


def _occam_panel(ax, power: np.ndarray) -> None:
  shifted = np.fft.fftshift(power)
  ax.imshow(np.log10(shifted / shifted.max() + 1e-8), cmap="magma", vmin=-6, vmax=0,
            interpolation="nearest")
  style.blank(ax)


PANELS = {"embedding": _embedding_panel, "matrix": _matrix_panel, "occam": _occam_panel}


def snapshots(snaps: Sequence[dict], stem, *, kind: str, title: str = ""):
  """Arrays at several steps: rows (op, weight decay, seed), columns the steps in order.

  Each snap: {op, weight_decay, seed, step, array, note (optional, shown in the title)}.
  """
  draw = PANELS[kind]
  rows = list(dict.fromkeys((s["op"], s["weight_decay"], s["seed"]) for s in snaps))
  n_cols = max(sum(1 for s in snaps if (s["op"], s["weight_decay"], s["seed"]) == r) for r in rows)
  size = (1.9, 1.9) if kind != "matrix" else (2.2, 1.6)
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(size[0] * n_cols, size[1] * len(rows)),
                             squeeze=False)
    for i, key in enumerate(rows):
      row_snaps = sorted((s for s in snaps if (s["op"], s["weight_decay"], s["seed"]) == key),
                         key=lambda s: s["step"])
      for j, s in enumerate(row_snaps):
        draw(axes[i, j], np.asarray(s["array"]))
        note = f"\n{s['note']}" if s.get("note") else ""
        axes[i, j].set_title(f"{key[0]} wd {key[1]:g} s{key[2]}: step {s['step']}{note}",
                             fontsize=6.5)
      for j in range(len(row_snaps), n_cols):
        axes[i, j].axis("off")
    if kind == "matrix":
      handles = [matplotlib.patches.Patch(color=c, label=f"quartile {k + 1}")
                 for k, c in enumerate(style.LEVEL_COLOURS)]
      fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    if title:
      fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.03 if kind == "matrix" else 0, 1, 1))
    return style.save(fig, stem)


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
  with plt.rc_context(style.RC):
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
    handles = [matplotlib.lines.Line2D([], [], marker="o", ls="", color=style.op_colour(op, k), label=op)
               for k, op in enumerate(ops)]
    axes[0, -1].legend(handles=handles, loc="lower right")
    note = (f"\nweight decay {', '.join(f'{w:g}' for w in empty)}: no run generalised"
            if empty else "")
    fig.suptitle(f"{title or f'lead over generalisation ({method} transition)'}{note}",
                 fontsize=8)
    fig.tight_layout()
    return style.save(fig, stem)


def _lead_panel(ax, rows: list[dict], ranked: list[str], ops: list[str]) -> None:
  ax.axvspan(-0.05, 0.05, color="0.92")
  ax.axvline(0, color="0.5", lw=0.8)
  for k, op in enumerate(ops):
    for r in (r for r in rows if r["op"] == op):
      y = ranked.index(r["measure"]) + (k - (len(ops) - 1) / 2) * 0.15
      mean, lo, hi = r["lead_decades_mean"], r["lead_decades_ci_lo"], r["lead_decades_ci_hi"]
      err = [[mean - lo], [hi - mean]] if np.isfinite(lo) else None
      c = style.op_colour(op, k)
      ax.errorbar(mean, y, xerr=err, fmt="o", ms=3.5, lw=1, color=c,
                  mfc=c if r["n_timed"] >= 2 else "white")
