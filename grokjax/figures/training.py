"""Accuracy and loss curves of a sweep (the paper's Fig. 1), from metrics.csv.

>>> # curves(runio.read_csv("runs/demo/metrics.csv"), "runs/demo/curves")
"""

from __future__ import annotations

import numpy as np

from grokjax import analysis
from grokjax.figures import style
from grokjax.figures.style import plt


def curves(metrics: dict, stem, *, grok_rows: list[dict] | None = None,
           mark: str = "test_acc_099_step"):
  """Accuracy and loss vs step per op (rows) x weight decay (column pairs); [png, pdf].

  Train dashed and faint, test solid; colour = seed; a dotted vertical line marks each
  run's `mark` step of `grok_rows` (default `analysis.grokking_table(metrics)`: the
  grokking step, test accuracy first >= 0.99). Loss on a log axis.
  """
  runs, ops, wds, seeds = style.layout(metrics)
  grok_rows = analysis.grokking_table(metrics) if grok_rows is None else grok_rows
  grok = {r["run"]: r.get(mark, np.nan) for r in grok_rows}
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(len(ops), 2 * len(wds), figsize=(3.0 * 2 * len(wds), 2.2 * len(ops)),
                             squeeze=False)
    for r in runs:
      row, col = ops.index(r["op"]), 2 * wds.index(r["weight_decay"])
      c = f"C{seeds.index(r['seed'])}"
      for j, kind in enumerate(("acc", "loss")):
        ax = axes[row, col + j]
        for split, lw, alpha in (("train", 1.0, 0.55), ("test", 1.5, 1.0)):
          ax.plot(*style.xy(metrics, r["run"], f"{split}_{kind}"), color=c, lw=lw, alpha=alpha,
                  ls="-" if split == "test" else "--", label=f"seed {r['seed']} {split}")
        if np.isfinite(grok.get(r["run"], np.nan)):
          ax.axvline(max(grok[r["run"]], 1), color=c, ls=":", lw=1)
    for (i, op), (j, wd) in ((a, b) for a in enumerate(ops) for b in enumerate(wds)):
      for k, kind in enumerate(("accuracy", "loss")):
        ax = axes[i, 2 * j + k]
        style.step_axis(ax)
        ax.set_title(f"{op}, wd {wd:g}: {kind}")
        if kind == "loss":
          style.log_axis(ax, "y")
        else:
          ax.set_ylim(-0.02, 1.02)
    axes[0, 0].legend(loc="center left", ncol=1)
    fig.tight_layout()
    return style.save(fig, stem)
