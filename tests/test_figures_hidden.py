"""Hidden-state maps: one panel per step x cloud and a colour bar, from synthetic circles."""

import numpy as np

from grokjax.figures import hidden
from tests.figure_helpers import caught, drawn  # noqa: F401  (a fixture)


def circle_panels(steps=(100, 900), columns=("wd 1: embedding", "wd 1: blocks.0"), n=23):
  angle = 2 * np.pi * np.arange(n) / n
  coords = np.stack([np.cos(angle), np.sin(angle)], axis=1)
  return [{"row": s, "column": c, "coords": coords * (1 + k), "labels": np.arange(n),
           "note": "PC1+2 50%"} for s in steps for k, c in enumerate(columns)]


def test_maps_grid_has_a_panel_per_step_and_cloud(tmp_path, caught):
  panels = circle_panels(steps=(900, 100, 300))
  # the last panel (step 300, block 0) left out: its cell, row 1 column 1, stays empty
  hidden.maps(panels[:-1], tmp_path / "m", label="answer", period=23)
  fig, = caught
  assert len(fig.axes) == 3 * 2 + 1  # the grid and the colour bar
  titles = [ax.get_title() for ax in fig.axes[:6]]
  assert titles[0] == "wd 1: embedding: step 100\nPC1+2 50%"  # rows in step order
  assert titles[5] == "wd 1: blocks.0: step 900\nPC1+2 50%"
  assert titles[3] == "" and not fig.axes[3].axison
  colours = fig.axes[0].collections[0].get_facecolors()
  assert len(np.unique(colours.round(6), axis=0)) == 23  # one colour per label
  np.testing.assert_allclose(colours[0][:3], colours[-1][:3], atol=0.1)  # cyclic map
  assert fig.axes[-1].get_ylabel() == "answer"


def test_maps_are_written(tmp_path):
  panels = circle_panels(n=97) + [{"row": 100, "column": "wd 0: blocks.0",
                                   "coords": np.random.default_rng(0).normal(size=(2000, 2)),
                                   "labels": np.arange(2000) % 97}]
  assert drawn(hidden.maps(panels, tmp_path / "x", label="x", period=97, title="PCA"))
