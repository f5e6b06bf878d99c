"""Figures of the causal lens, drawn from causal.csv / causal_ablation.csv columns.

`plot_patching_grid`: the paper's Figure 2 layout for one op — rows are weight decays,
columns are steps, each panel a layer x head heat map of one patching effect averaged
over the runs in that cell (seeds, ...). One diverging colour scale, symmetric about 0,
is shared by every panel of the figure and stated in the colour bar. Cells carry their
values when a panel has at most 32 heads; larger grids (24 x 16) get sparse ticks.

`plot_ablation_curves`: the same grid of panels with accuracy against the number of
heads ablated: importance order (solid) and random orders (mean, with a min-max band
over orders and runs).

>>> # plot_patching_grid(runio.read_csv("runs/demo/causal.csv"), "add", "causal_add.png")
"""

from __future__ import annotations

import os

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

LABELS = {
    "logit_diff": "change in logit diff (logit[corrupt ans] - logit[clean ans])",
    "prob": "change in P(clean answer)",
    "recovered": "fraction of the clean-to-corrupt logit-diff gap recovered",
}


def _cells(t: dict[str, np.ndarray], op: str):
  sel = t["op"].astype(str) == op
  wds = sorted(set(t["weight_decay"][sel].tolist()))
  steps = sorted(set(t["step"][sel].tolist()))
  return sel, wds, steps


def _ticks(ax, n_layers: int, n_heads: int) -> None:
  every = lambda n: max(1, int(np.ceil(n / 8)))
  ax.set_xticks(np.arange(0, n_heads, every(n_heads)))
  ax.set_yticks(np.arange(0, n_layers, every(n_layers)))
  ax.tick_params(labelsize=7)


def _grid(t, sel, metric: str):
  """[L, H] mean over the selected rows (runs), and the number of runs averaged."""
  L, H = int(t["layer"].max()) + 1, int(t["head"].max()) + 1
  total, count = np.zeros((L, H)), np.zeros((L, H))
  np.add.at(total, (t["layer"][sel], t["head"][sel]), t[metric][sel])
  np.add.at(count, (t["layer"][sel], t["head"][sel]), 1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return total / count, len(set(t["run"][sel].tolist()))


def plot_patching_grid(t: dict[str, np.ndarray], op: str, path: str | os.PathLike,
                       metric: str = "logit_diff") -> None:
  """Figure-2 style grid of [layer x head] heat maps for one op (see module docstring)."""
  sel, wds, steps = _cells(t, op)
  L, H = int(t["layer"].max()) + 1, int(t["head"].max()) + 1
  grids = {(wd, s): _grid(t, sel & (t["weight_decay"] == wd) & (t["step"] == s), metric)
           for wd in wds for s in steps}
  finite = np.concatenate([g[np.isfinite(g)] for g, _ in grids.values()] + [np.zeros(1)])
  vmax = float(np.max(np.abs(finite))) or 1.0
  pw, ph = np.clip(0.55 * H, 2.2, 4.5), np.clip(0.55 * L, 1.2, 4.5)
  size = (pw * len(steps) + 1.4, ph * len(wds) + 1.0)
  fig, axes = plt.subplots(len(wds), len(steps), figsize=size,
                           squeeze=False, constrained_layout=True)
  for (wd, s), (g, n_runs) in grids.items():
    ax = axes[wds.index(wd), steps.index(s)]
    im = ax.imshow(g, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto", interpolation="nearest")
    if L * H <= 32:
      for (l, h), v in np.ndenumerate(g):
        if np.isfinite(v):
          ax.text(h, l, f"{v:.2f}", ha="center", va="center", fontsize=7,
                  color="white" if abs(v) > 0.6 * vmax else "black")
    _ticks(ax, L, H)
    ax.set_title(f"wd {wd:g}, step {s} ({n_runs} run{'s' if n_runs > 1 else ''})", fontsize=8)
    ax.set_xlabel("head", fontsize=7)
    ax.set_ylabel("layer", fontsize=7)
  cbar = fig.colorbar(im, ax=axes, shrink=0.9)
  cbar.set_label(f"{LABELS.get(metric, metric)}\nshared scale ±{vmax:.3g}", fontsize=7)
  fig.suptitle(f"activation patching per head, op {op}: mean over pairs and runs", fontsize=9)
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_ablation_curves(t: dict[str, np.ndarray], op: str, path: str | os.PathLike) -> None:
  """Accuracy vs heads ablated, importance order vs random orders, per weight decay x step."""
  sel, wds, steps = _cells(t, op)
  fig, axes = plt.subplots(len(wds), len(steps), figsize=(3.0 * len(steps), 2.4 * len(wds) + 0.6),
                           squeeze=False, sharey=True, constrained_layout=True)
  for wd in wds:
    for s in steps:
      ax = axes[wds.index(wd), steps.index(s)]
      cell = sel & (t["weight_decay"] == wd) & (t["step"] == s)
      ns = np.unique(t["n_ablated"][cell])
      at = lambda order: [t["accuracy"][cell & (t["order"].astype(str) == order)
                                        & (t["n_ablated"] == n)] for n in ns]
      imp, rnd = at("importance"), at("random")
      ax.plot(ns, [v.mean() for v in imp], "-o", ms=2.5, color="C3", label="importance order")
      if rnd and rnd[0].size:
        ax.plot(ns, [v.mean() for v in rnd], "--", color="C0", label="random orders (mean)")
        ax.fill_between(ns, [v.min() for v in rnd], [v.max() for v in rnd], color="C0",
                        alpha=0.2, lw=0, label="random orders (min-max)")
      ax.set_ylim(-0.02, 1.02)
      ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
      ax.set_title(f"wd {wd:g}, step {s}", fontsize=8)
      ax.set_xlabel("heads ablated", fontsize=7)
      ax.set_ylabel("accuracy", fontsize=7)
      ax.tick_params(labelsize=7)
  mode = str(t["ablation"][sel][0]) if sel.any() else ""
  axes[0, 0].legend(fontsize=6, loc="lower left")
  fig.suptitle(f"cumulative {mode} ablation of heads, op {op}", fontsize=9)
  fig.savefig(path, dpi=110)
  plt.close(fig)
