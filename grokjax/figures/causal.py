"""Figures of the causal lens, drawn from causal.csv / causal_ablation.csv columns.

`patching_grid`: the paper's Figure 2 layout for one op — rows are weight decays,
columns are steps, each panel a layer x head heat map of one patching effect averaged
over the runs in that cell (seeds, ...). One diverging colour scale, symmetric about 0,
is shared by every panel of the figure and stated in the colour bar. Cells carry their
values when a panel has at most 32 heads; larger grids (24 x 16) get sparse ticks.

`ablation_curves`: the same grid of panels with accuracy against the number of heads
ablated: importance order (solid) and random orders (mean, with a min-max band over
orders and runs).

>>> # patching_grid(runio.read_csv("runs/demo/causal.csv"), "add", "runs/demo/causal_add")
"""

from __future__ import annotations

import textwrap

import matplotlib.ticker
import numpy as np

from grokjax.figures import style
from grokjax.figures.style import plt

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


def head_grid(t, sel, metric: str) -> tuple[np.ndarray, int]:
  """[L, H] mean over the selected rows (runs), and the number of runs averaged."""
  L, H = int(t["layer"].max()) + 1, int(t["head"].max()) + 1
  total, count = np.zeros((L, H)), np.zeros((L, H))
  np.add.at(total, (t["layer"][sel], t["head"][sel]), t[metric][sel])
  np.add.at(count, (t["layer"][sel], t["head"][sel]), 1)
  with np.errstate(invalid="ignore", divide="ignore"):
    return total / count, len(set(t["run"][sel].tolist()))


def patching_grid(t: dict[str, np.ndarray], op: str, stem, metric: str = "logit_diff"):
  """Figure-2 style grid of [layer x head] heat maps for one op; [png, pdf]."""
  sel, wds, steps = _cells(t, op)
  L, H = int(t["layer"].max()) + 1, int(t["head"].max()) + 1
  grids = {(wd, s): head_grid(t, sel & (t["weight_decay"] == wd) & (t["step"] == s), metric)
           for wd in wds for s in steps}
  finite = np.concatenate([g[np.isfinite(g)] for g, _ in grids.values()] + [np.zeros(1)])
  vmax = float(np.max(np.abs(finite))) or 1.0
  pw, ph = np.clip(0.55 * H, 2.2, 4.5), np.clip(0.55 * L, 1.2, 4.5)
  size = (pw * len(steps) + 1.4, ph * len(wds) + 1.0)
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(len(wds), len(steps), figsize=size, squeeze=False,
                             constrained_layout=True)
    for (wd, s), (g, n_runs) in grids.items():
      ax = axes[wds.index(wd), steps.index(s)]
      im = ax.imshow(g, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto",
                     interpolation="nearest")
      if L * H <= 32:
        for (l, h), v in np.ndenumerate(g):
          if np.isfinite(v):
            ax.text(h, l, f"{v:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if abs(v) > 0.6 * vmax else "black")
      _ticks(ax, L, H)
      ax.set_title(f"wd {wd:g}, step {s} ({n_runs} run{'s' if n_runs > 1 else ''})")
      ax.set_xlabel("head")
      ax.set_ylabel("layer")
    cbar = fig.colorbar(im, ax=axes, shrink=0.9)
    wrap = max(20, int(12 * size[1]))  # characters per line that fit beside the bar
    cbar.set_label(textwrap.fill(LABELS.get(metric, metric), wrap)
                   + f"\nshared scale ±{vmax:.3g}", fontsize=6)
    fig.suptitle(f"activation patching per head, op {op}: mean over pairs and runs", fontsize=9)
    return style.save(fig, stem)


def ablation_curves(t: dict[str, np.ndarray], op: str, stem):
  """Accuracy vs heads ablated, importance vs random orders, per weight decay x step."""
  sel, wds, steps = _cells(t, op)
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(len(wds), len(steps), squeeze=False, sharey=True,
                             figsize=(3.0 * len(steps), 2.4 * len(wds) + 0.6),
                             constrained_layout=True)
    for wd in wds:
      for s in steps:
        cell = sel & (t["weight_decay"] == wd) & (t["step"] == s)
        _ablation_panel(axes[wds.index(wd), steps.index(s)], t, cell)
        axes[wds.index(wd), steps.index(s)].set_title(f"wd {wd:g}, step {s}")
    mode = str(t["ablation"][sel][0]) if sel.any() else ""
    axes[0, 0].legend(fontsize=6, loc="lower left")
    fig.suptitle(f"cumulative {mode} ablation of heads, op {op}", fontsize=9)
    return style.save(fig, stem)


def _ablation_panel(ax, t: dict, cell: np.ndarray) -> None:
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
  ax.set_xlabel("heads ablated")
  ax.set_ylabel("accuracy")
