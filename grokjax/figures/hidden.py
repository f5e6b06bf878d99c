"""Maps of embeddings and hidden states over training (the paper's appendix PCA / t-SNE).

  maps   a grid of 2-D point clouds: rows the steps, columns the point clouds (e.g. the
         number embedding and each block's answer-position residual stream, per weight
         decay), points coloured by a cyclic label (the answer, or x) with one colour bar

The clouds are arrays a lens saved (hidden.npz); the caller picks the coordinates
(PCA or t-SNE) and the label.

>>> # maps([{"row": 900, "column": "wd 1: embedding", "coords": c, "labels": np.arange(97)}],
>>> #      "report/figures/hidden_pca_answer", label="answer", period=97)
"""

from __future__ import annotations

from typing import Sequence

import matplotlib
import numpy as np

from grokjax.figures import style
from grokjax.figures.style import plt

CMAP = "twilight"  # cyclic: residues 0 and p - 1 get neighbouring colours


def maps(panels: Sequence[dict], stem, *, label: str, period: int, title: str = ""):
  """Point clouds on a grid: rows `row` (ascending), columns `column` (in order given); [png, pdf].

  Each panel: {row, column, coords [N, 2], labels [N] ints in 0..period-1, note (optional,
  shown under the title)}. A grid cell without a panel is left empty.
  """
  rows = sorted({p["row"] for p in panels})
  cols = list(dict.fromkeys(p["column"] for p in panels))
  norm = matplotlib.colors.Normalize(vmin=0, vmax=period)
  cmap = plt.get_cmap(CMAP)
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(1.9 * len(cols) + 0.8,
                             1.9 * len(rows)), squeeze=False)
    for ax in axes.flat:
      ax.axis("off")
    for p in panels:
      ax = axes[rows.index(p["row"]), cols.index(p["column"])]
      ax.axis("on")
      _cloud(ax, np.asarray(p["coords"]), np.asarray(p["labels"]), cmap, norm)
      note = f"\n{p['note']}" if p.get("note") else ""
      ax.set_title(f"{p['column']}: step {p['row']}{note}", fontsize=6.5)
    if title:
      fig.suptitle(title)
    w = fig.get_figwidth()  # the colour bar and its label take the last 0.8 inch
    fig.tight_layout(rect=(0, 0, 1 - 0.8 / w, 1))
    bar = fig.add_axes((1 - 0.7 / w, 0.25, 0.12 / w, 0.5))
    fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=bar,
                 ticks=[0, period // 2, period - 1]).set_label(label, fontsize=7)
    return style.save(fig, stem)


def _cloud(ax, coords_Nx2: np.ndarray, labels_N: np.ndarray, cmap, norm) -> None:
  n = coords_Nx2.shape[0]
  # a few hundred points stay legible as dots; thousands need small translucent ones
  size, alpha = (8, 1.0) if n <= 150 else (max(40 / np.sqrt(n), 0.6), 0.7)
  ax.scatter(*coords_Nx2.T, c=cmap(norm(labels_N)), s=size, alpha=alpha, lw=0,
             rasterized=n > 300)
  ax.set_aspect("equal", adjustable="datalim")
  style.blank(ax)
