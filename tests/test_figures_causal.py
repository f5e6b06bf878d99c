"""Causal figures from synthetic tables: 2 x 4 heads and 24 x 16 heads."""

import numpy as np
import pytest

from grokjax.figures import causal
from tests.figure_helpers import drawn


def patch_table(L, H, steps=(100, 1000), wds=(0.0, 1.0), seeds=(1, 2)):
  rows = [(r, wd, s, st, l, h) for r, (wd, s) in enumerate((wd, s) for wd in wds for s in seeds)
          for st in steps for l in range(L) for h in range(H)]
  r, wd, seed, st, l, h = map(np.array, zip(*rows))
  return {"run": r, "op": np.array(["add"] * len(r), object), "seed": seed, "weight_decay": wd,
          "step": st, "layer": l, "head": h, "logit_diff": np.sin(l + 2.0 * h + st / 100 + r)}


@pytest.mark.parametrize("L, H", [(2, 4), (24, 16)])
def test_patching_grid_is_drawn(tmp_path, L, H):
  assert drawn(causal.patching_grid(patch_table(L, H), "add", tmp_path / "grid"), 10_000)


def test_grid_average_over_runs():
  t = patch_table(2, 4)
  sel = (t["weight_decay"] == 1.0) & (t["step"] == 100)
  g, n = causal.head_grid(t, sel, "logit_diff")
  assert n == 2
  want = np.mean([t["logit_diff"][sel & (t["run"] == r) & (t["layer"] == 1) & (t["head"] == 3)]
                  for r in (2, 3)])
  np.testing.assert_allclose(g[1, 3], want)


def test_ablation_curves_are_drawn(tmp_path):
  rows = [(r, wd, st, order, j, n) for r, wd in ((0, 0.0), (1, 1.0)) for st in (100, 1000)
          for order, js in (("importance", [0]), ("random", [0, 1, 2])) for j in js
          for n in range(9)]
  r, wd, st, order, j, n = map(np.array, zip(*rows))
  t = {"run": r, "op": np.array(["add"] * len(r), object), "weight_decay": wd, "step": st,
       "order": order.astype(object), "order_index": j, "n_ablated": n,
       "ablation": np.array(["zero"] * len(r), object), "accuracy": np.exp(-n / (1 + j))}
  assert drawn(causal.ablation_curves(t, "add", tmp_path / "abl"), 10_000)
