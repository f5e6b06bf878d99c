"""Trajectories, snapshots and the lead ranking, from synthetic tidy tables."""

import numpy as np

from grokjax import analysis
from grokjax.figures import measures
from tests.figure_helpers import caught, drawn  # noqa: F401  (a fixture)
from tests.test_analysis import synthetic_tables


def test_trajectories_rows_and_columns(tmp_path, caught):
  """One row per measure under test accuracy, one column per weight decay."""
  metrics, q = synthetic_tables(wds=(0.0, 1.0))
  measures.trajectories([(q, "early", "early"), (q, "absent", "absent")], metrics,
                        tmp_path / "t", gen_steps={0: 500.0})
  fig, = caught
  assert len(fig.axes) == 3 * 2
  texts = [t.get_text() for ax in fig.axes[4:] for t in ax.texts]
  assert texts == ["not measured", "not measured"]
  assert fig.axes[0].get_ylim() == (-0.02, 1.02)


def test_trajectories_without_metrics_draw_a_band(tmp_path, caught):
  """No accuracy row: the runs are the first panel's; `spread` shades mean ± std."""
  _, q = synthetic_tables()
  q = {**q, "early_std": np.full(len(q["run"]), 0.5)}
  measures.trajectories([(q, "early", "early")], None, tmp_path / "t",
                        spread={"early": "early_std"})
  fig, = caught
  assert len(fig.axes) == 1
  band = fig.axes[0].collections[0].get_paths()[0].vertices[:, 1]
  steps, early = analysis.trajectory(q, 0, "early")
  np.testing.assert_allclose([band.min(), band.max()],
                             [early.min() - 0.5, early.max() + 0.5], rtol=1e-6)


def test_snapshots_and_lead_ranking_are_drawn(tmp_path):
  rng = np.random.default_rng(0)
  base = {"op": "add", "weight_decay": 1.0, "seed": 0}
  for kind, shape in (("embedding", (11, 2)), ("matrix", (11, 8)), ("occam", (11, 11))):
    arr = rng.integers(0, 4, shape) if kind == "matrix" else rng.normal(size=shape) ** 2
    snaps = [{**base, "step": s, "array": arr, "note": "n"} for s in (10, 100)]
    assert drawn(measures.snapshots(snaps, tmp_path / kind, kind=kind))
  metrics, q = synthetic_tables(wds=(0.0, 1.0), noise=0.02)
  leads = analysis.lead_summary(analysis.transition_table(metrics, {"early": q, "late": q}))
  assert drawn(measures.lead_ranking(leads, tmp_path / "leads"))
