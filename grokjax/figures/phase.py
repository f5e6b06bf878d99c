"""Phase diagrams of a grid (x field vs y field) from phase_cells.csv, after Liu et al. 2022.

Four heat maps over the grid's cells (one row of `grokjax.phase.aggregate` each):
the median grok step (log colour scale, blank where no seed grokked), the median
final test accuracy, the median memorisation step (log colour, blank where no seed
fitted), and the majority phase as a categorical map with a fixed colour per phase
(`PHASE_COLOURS`) and a legend. Cells sit at the rank of their value on each axis,
labelled with the value, so uneven grids (0, 0.1, 0.3, 1, ...) draw evenly.

>>> # diagrams(runio.read_csv("runs/phase/phase_cells.csv"), "weight_decay", "train_frac",
>>> #          "runs/phase/phase")
"""

from __future__ import annotations

import matplotlib.colors
import matplotlib.patches
import numpy as np

from grokjax.figures import style
from grokjax.figures.style import plt

# the phases of grokjax.phase.PHASES, in its order, a fixed colour each
PHASE_COLOURS = {"no_learning": "#bdbdbd", "memorisation": "#d7191c", "grokking": "#fdae61",
                 "comprehension": "#1a9641"}


def grid_of(cells: dict, x: str, y: str, column: str) -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
  """(x values, y values, [len(y), len(x)] of `column`, NaN where the table has no cell)."""
  xs, ys = np.unique(cells[x]), np.unique(cells[y])
  values = np.asarray(cells[column])
  grid = np.full((len(ys), len(xs)), np.nan, dtype=object if values.dtype.kind in "OUS" else
                 np.float64)
  grid[np.searchsorted(ys, cells[y]), np.searchsorted(xs, cells[x])] = values
  return xs, ys, grid


def _axes(ax, xs, ys, x: str, y: str) -> None:
  ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
  ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
  ax.set_xlabel(x)
  ax.set_ylabel(y)
  ax.spines[["top", "right"]].set_visible(True)


def _numeric(fig, ax, cells, x, y, column, title, *, log: bool) -> None:
  xs, ys, grid = grid_of(cells, x, y, column)
  grid = grid.astype(np.float64)
  finite = grid[np.isfinite(grid) & (grid > 0 if log else True)]
  if log:
    grid = np.where(grid > 0, grid, np.nan)  # a step 0 has no place on a log scale
    norm = (matplotlib.colors.LogNorm(finite.min(), max(finite.max(), finite.min() * 1.01))
            if finite.size else None)
  else:
    norm = matplotlib.colors.Normalize(0.0, 1.0)
  mesh = ax.imshow(np.ma.masked_invalid(grid), origin="lower", aspect="auto", cmap="viridis",
                   norm=norm, interpolation="nearest")
  if finite.size:
    fig.colorbar(mesh, ax=ax)
  _axes(ax, xs, ys, x, y)
  ax.set_title(title + ("" if finite.size else " (none reached)"))


def _categorical(ax, cells, x, y) -> None:
  xs, ys, grid = grid_of(cells, x, y, "phase")
  names = list(PHASE_COLOURS)
  index = np.array([[names.index(p) if p in PHASE_COLOURS else np.nan for p in row]
                    for row in grid], np.float64)
  cmap = matplotlib.colors.ListedColormap(list(PHASE_COLOURS.values()))
  ax.imshow(np.ma.masked_invalid(index), origin="lower", aspect="auto", cmap=cmap,
            vmin=-0.5, vmax=len(names) - 0.5, interpolation="nearest")
  _axes(ax, xs, ys, x, y)
  ax.set_title("majority phase over seeds")
  ax.legend(handles=[matplotlib.patches.Patch(color=c, label=p.replace("_", " "))
                     for p, c in PHASE_COLOURS.items()], loc="upper left",
            bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def diagrams(cells: dict, x: str, y: str, stem, title: str = ""):
  """The four phase-diagram panels of phase_cells.csv columns; [png, pdf]."""
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(2, 2, figsize=(9.0, 6.6))
    _numeric(fig, axes[0, 0], cells, x, y, "median_grok_step",
             "median grok step, test acc ≥ 0.99 (blank: never)", log=True)
    _numeric(fig, axes[0, 1], cells, x, y, "median_final_test_acc",
             "median final test accuracy", log=False)
    _numeric(fig, axes[1, 0], cells, x, y, "median_memorisation_step",
             "median memorisation step, train acc ≥ 0.99 (blank: never)", log=True)
    _categorical(axes[1, 1], cells, x, y)
    if title:
      fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return style.save(fig, stem)
