"""SLT figures from tables and arrays: LLC over training, calibration traces, invariance maps."""

import numpy as np

from grokjax.figures import slt
from tests.figure_helpers import caught, drawn  # noqa: F401  (a fixture)
from tests.test_analysis import synthetic_tables


def llc_table(metrics, samplers=("sgld", "rmsprop_sgld")):
  rows = [(run, s, step, k) for k, s in enumerate(samplers) for run in range(2)
          for step in (0, 100, 1000, 10000)]
  run, sampler, step, k = map(np.array, zip(*rows))
  info = {c: metrics[c][np.searchsorted(metrics["run"], run)] for c in ("op", "seed",
                                                                         "weight_decay")}
  return {"run": run, **info, "step": step, "sampler": sampler.astype(object),
          "step_size": np.full(run.size, 4e-6), "localization": np.full(run.size, 1e4),
          "nbeta": np.full(run.size, 60.0), "llc_mean": 10.0 + 100 * k + step / 1000,
          "llc_std": np.full(run.size, 0.5)}


def test_llc_over_training_draws_the_first_sampler(tmp_path, caught):
  metrics, _ = synthetic_tables()
  slt.llc_over_training(llc_table(metrics), metrics, tmp_path / "llc")
  fig, = caught
  assert len(fig.axes) == 2  # test accuracy, then λ̂
  ys = np.concatenate([line.get_ydata() for line in fig.axes[1].get_lines()])
  assert ys.min() == 10.0 and ys.max() == 20.0  # the second sampler (100 higher) is left out
  assert "sampler sgld" in fig._suptitle.get_text()
  assert len(fig.axes[1].collections) == 2  # a ± std band per run


def test_failed_estimates_are_hollow(tmp_path, caught):
  """Rows with diag_ok false (as read back from CSV: 'False') get hollow markers."""
  metrics, _ = synthetic_tables()
  llc = llc_table(metrics, samplers=("sgld",))
  bad = (llc["step"] == 1000) | ((llc["run"] == 1) & (llc["step"] == 0))
  llc["diag_ok"] = np.where(bad, "False", "True").astype(object)
  slt.llc_over_training(llc, metrics, tmp_path / "llc")
  fig, = caught
  lines = fig.axes[1].get_lines()
  hollow = [ln for ln in lines if ln.get_marker() == "o" and ln.get_markerfacecolor() == "none"]
  filled = [ln for ln in lines if ln.get_marker() == "o" and ln.get_markerfacecolor() != "none"]
  assert sorted(np.concatenate([ln.get_xdata() for ln in hollow]).tolist()) == [1, 1000, 1000]
  assert len(np.concatenate([ln.get_xdata() for ln in filled])) == 8 - 3
  assert np.array_equal(slt.diag_failed({"diag_ok": np.array([True, False])}), [False, True])
  assert slt.diag_failed({"llc_mean": np.ones(2)}) is None


def test_llc_over_training_without_metrics(tmp_path):
  metrics, _ = synthetic_tables()
  assert drawn(slt.llc_over_training(llc_table(metrics), None, tmp_path / "llc"))


def test_calibration_is_drawn(tmp_path):
  steps, gams = np.meshgrid([1e-4, 1e-3, 1e-2], [1.0, 100.0])
  n = steps.size
  rng = np.random.default_rng(0)
  out = {"step_size": steps.ravel(), "localization": gams.ravel(), "nbeta": np.full(n, 5.0),
         "loss/trace": 1 + np.cumsum(rng.random((n, 2, 40)), -1) / 40, "loss/init": np.ones(n),
         "llc/mean": rng.random(n), "llc/std": rng.random(n) / 10,
         "diverged/count": np.zeros(n, int)}
  assert drawn(slt.calibration(out, tmp_path / "cal"), 10_000)


def invariance_table():
  a, b = (v.ravel() for v in np.meshgrid([0.1, 1.0, 10.0], [0.5, 2.0], indexing="ij"))
  one = lambda v: np.full(a.size, v)
  t = {"run": one(0), "op": np.array(["add"] * a.size, object), "seed": one(0),
       "weight_decay": one(1.0), "step": one(1500), "step_size": one(4e-6),
       "localization": one(1e4), "alpha": a, "beta": b, "llc_mean": 10 * a + b,
       "init_loss_change": np.log(a) * b}
  both = {k: np.concatenate([v, v]) for k, v in t.items()}
  both["sampler"] = np.array(["sgld"] * a.size + ["scale_invariant"] * a.size, object)
  both["llc_mean"][a.size:] = -1.0
  return both


def test_invariance_grid_places_each_row(tmp_path, caught):
  slt.invariance(invariance_table(), tmp_path / "inv", sampler="sgld")
  fig, = caught
  grid = fig.axes[0].collections[0].get_array().reshape(3, 2)  # α rows, β columns
  np.testing.assert_allclose(grid, [[1.5, 3.0], [10.5, 12.0], [100.5, 102.0]])
  assert fig.axes[0].get_title().startswith("sgld (ε=4e-06, γ=10000), add wd 1 seed 0, step 1500")


def test_log_edges_are_geometric_midpoints():
  np.testing.assert_allclose(slt.log_edges(np.array([1.0, 100.0])), [0.1, 10.0, 1000.0])
  np.testing.assert_allclose(slt.log_edges(np.array([4.0])), 4.0 * np.exp([-0.5, 0.5]))
