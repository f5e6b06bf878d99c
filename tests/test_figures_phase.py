"""Phase diagrams from a planted phase_cells table: every cell where it belongs."""

import math

import numpy as np

from grokjax import phase, runio
from grokjax.figures import phase as phase_figures
from tests.figure_helpers import caught, drawn  # noqa: F401  (a fixture)

PHASE_OF = {(0.0, 0.4): "no_learning", (0.0, 0.8): "memorisation", (1.0, 0.4): "grokking",
            (1.0, 0.8): "comprehension", (3.0, 0.4): "grokking", (3.0, 0.8): "comprehension"}


def planted_cells() -> dict:
  """phase_cells.csv columns of a 3 x 2 grid (NaN steps: never reached)."""
  rows = []
  for (wd, frac), p in PHASE_OF.items():
    fit = math.nan if p == "no_learning" else 100.0 * (1 + wd)
    grok = {"grokking": 1000.0 * (1 + wd), "comprehension": fit}.get(p, math.nan)
    rows.append({"weight_decay": wd, "train_frac": frac, "median_memorisation_step": fit,
                 "median_grok_step": grok, "median_final_test_acc": 1.0 if grok == grok else 0.1,
                 "phase": p})
  cols = {k: np.asarray([r[k] for r in rows]) for k in rows[0]}
  cols["phase"] = cols["phase"].astype(object)
  return cols


def test_phase_colours_cover_the_phases():
  assert tuple(phase_figures.PHASE_COLOURS) == phase.PHASES


def test_diagrams_are_drawn(tmp_path):
  assert drawn(phase_figures.diagrams(planted_cells(), "weight_decay", "train_frac",
                                      tmp_path / "phase"))


def test_cells_sit_on_the_grid_with_their_values(tmp_path, caught):
  cells = planted_cells()
  phase_figures.diagrams(cells, "weight_decay", "train_frac", tmp_path / "phase")
  (fig,) = caught
  grok_ax, acc_ax, fit_ax, phase_ax = fig.axes[:4]  # the colour bars come after
  grok = grok_ax.get_images()[0].get_array()
  assert grok.shape == (2, 3)  # y (train_frac) rows x x (weight_decay) columns
  # never grokked: blank (masked); grokked: the median grok step on a log colour scale
  assert grok.mask[0, 0] and grok.mask[1, 0] and not grok.mask[0, 1]
  assert grok[0, 1] == 2000.0 and grok[0, 2] == 4000.0
  assert grok_ax.get_images()[0].norm.__class__.__name__ == "LogNorm"
  assert fit_ax.get_images()[0].get_array().mask[0, 0]  # never fitted
  np.testing.assert_array_equal(acc_ax.get_images()[0].get_array(), [[0.1, 1, 1], [0.1, 1, 1]])
  index = phase_ax.get_images()[0].get_array()
  names = list(phase_figures.PHASE_COLOURS)
  want = [[names.index(PHASE_OF[(x, y)]) for x in (0.0, 1.0, 3.0)] for y in (0.4, 0.8)]
  np.testing.assert_array_equal(index, want)
  legend = [t.get_text() for t in phase_ax.get_legend().get_texts()]
  assert legend == [p.replace("_", " ") for p in phase.PHASES]
  assert [t.get_text() for t in grok_ax.get_xticklabels()] == ["0", "1", "3"]


def test_a_phase_cells_csv_read_back_draws_the_same_phases(tmp_path, caught):
  """experiments.phase draws the table it wrote, as runio reads it back (NaN cells included)."""
  cells = planted_cells()
  runio.write_csv(tmp_path / "phase_cells.csv",
                  [{k: v[i] for k, v in cells.items()} for i in range(len(cells["phase"]))])
  phase_figures.diagrams(runio.read_csv(tmp_path / "phase_cells.csv"), "weight_decay",
                         "train_frac", tmp_path / "phase")
  phase_figures.diagrams(cells, "weight_decay", "train_frac", tmp_path / "phase")
  read, planted = caught
  for a, b in zip(read.axes[:4], planted.axes[:4]):
    np.testing.assert_array_equal(a.get_images()[0].get_array().filled(-1),
                                  b.get_images()[0].get_array().filled(-1))
