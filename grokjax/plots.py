"""Figures drawn from the tidy tables of a run folder (never recomputed here)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402

STYLE = {"train": "-", "test": "--"}


def _groups(m: dict[str, np.ndarray]):
  """(op, weight_decay) -> list of run indices, in the order they first appear."""
  out: dict[tuple, list[int]] = {}
  for run in dict.fromkeys(m["run"].tolist()):
    i = np.flatnonzero(m["run"] == run)[0]
    out.setdefault((str(m["op"][i]), float(m["weight_decay"][i])), []).append(run)
  return out


def plot_curves(m: dict[str, np.ndarray], path: str | os.PathLike) -> None:
  """Train (solid) and test (dashed) accuracy and loss vs step (log axis), per op x wd.

  One row per op; for each weight decay an accuracy and a loss panel; seeds (and any
  other run fields) overlaid in different colours. Step 0 is drawn at step 1.
  """
  groups = _groups(m)
  ops = list(dict.fromkeys(op for op, _ in groups))
  wds = sorted({wd for _, wd in groups})
  fig, axes = plt.subplots(len(ops), 2 * len(wds), figsize=(4.2 * 2 * len(wds), 3.0 * len(ops)),
                           squeeze=False)
  for (op, wd), runs in groups.items():
    r, c = ops.index(op), 2 * wds.index(wd)
    for k, run in enumerate(runs):
      sel = m["run"] == run
      order = np.argsort(m["step"][sel])
      steps = np.maximum(m["step"][sel][order], 1)
      i0 = np.flatnonzero(sel)[0]
      label = f"seed {m['seed'][i0]}"
      for split in ("train", "test"):
        for j, kind in enumerate(("acc", "loss")):
          axes[r, c + j].plot(steps, m[f"{split}_{kind}"][sel][order], STYLE[split],
                              color=f"C{k}", lw=1.2, label=f"{label} {split}")
    for j, kind in enumerate(("accuracy", "loss")):
      ax = axes[r, c + j]
      ax.set_xscale("log")
      ax.set_title(f"{op}, weight decay {wd:g}: {kind}", fontsize=9)
      ax.set_xlabel("step")
      if kind == "loss":
        ax.set_yscale("log")
      else:
        ax.set_ylim(-0.02, 1.02)
  axes[0, 0].legend(fontsize=7, loc="upper left")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
