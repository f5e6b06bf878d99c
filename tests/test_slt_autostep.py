"""The automatic step size: the largest ε of a grid whose pilot chains pass MALA's test."""

from __future__ import annotations

import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import checkpoint, runio
from grokjax.errors import ConfigError
from grokjax.slt import apply, autostep
from grokjax.slt import llc as llc_lib

D, N = 4, 1000


@pytest.fixture(scope="module")
def regular():
  """Linear regression, d = 4: regular, λ = d/2 = 2; ∇²L_n ≈ I, so with nβ = n/log n ≈ 145
  SGLD is unstable past ε ≈ 2/145 and MALA rejects well before that."""
  x = jax.random.normal(jax.random.key(0), (N, D))
  w = jnp.arange(1.0, D + 1.0)
  loss = lambda p, b: 0.5 * jnp.mean((b[1] - b[0] @ p) ** 2)
  spec = llc_lib.make_spec(sampler="sgld", num_chains=8, num_draws=1500, num_burnin=300,
                           batch_size=None, n=N)
  return loss, w, (x, x @ w), spec


def _auto(regular, grid, key=1):
  loss, w, data, spec = regular
  return jax.jit(lambda g: autostep.auto_llc(
      loss, w, data, key=jax.random.key(key), spec=spec, step_sizes=g,
      nbeta=llc_lib.default_nbeta(N), localization=1.0))(jnp.asarray(grid, jnp.float32))


def test_the_largest_accepting_step_is_chosen_and_its_llc_is_right(regular):
  grid = [1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
  out = _auto(regular, grid)
  accept, passed, i = (np.asarray(out[k]) for k in ("autostep/accept", "autostep/passed",
                                                    "autostep/index"))
  # acceptance falls as ε grows; the chosen ε is the largest that reaches the target
  assert np.all(np.diff(accept[np.isfinite(accept)]) < 0)
  assert passed[: i + 1].all() and not passed[i + 1:].any()
  assert accept[i] >= autostep.TARGET and 0 < i < len(grid) - 1
  assert bool(out["autostep/ok"]) and float(out["autostep/step_size"]) == np.float32(grid[i])
  # at the chosen ε λ̂ is d/2 within the discretisation bias an acceptance of 0.9 allows in
  # four dimensions (up to ~20 %, grokjax.slt.diagnostics; the finite-γ correction is < 1 %);
  # the next ε up, which the pilots reject, reads far higher
  assert float(out["llc/mean"]) == pytest.approx(D / 2, rel=0.2)
  assert bool(out["diag/ok"])
  loss, w, data, spec = regular
  rejected = llc_lib.estimate_llc(loss, w, data, key=jax.random.key(1), step_size=grid[i + 1],
                                  localization=1.0, num_chains=spec.num_chains,
                                  num_draws=spec.num_draws, num_burnin=spec.num_burnin)
  assert float(rejected["llc/mean"]) > 1.4 * D / 2


def test_the_estimate_is_the_fixed_step_estimate_at_the_chosen_step(regular):
  """The pilots use keys of their own: the estimate is sample_llc's at that ε (to float
  rounding: the two programs fuse differently)."""
  loss, w, data, spec = regular
  out = _auto(regular, [3e-4, 1e-3, 1e-2])
  fixed = llc_lib.estimate_llc(loss, w, data, key=jax.random.key(1), sampler="sgld",
                               step_size=float(out["autostep/step_size"]), localization=1.0,
                               num_chains=spec.num_chains, num_draws=spec.num_draws,
                               num_burnin=spec.num_burnin)
  np.testing.assert_allclose(np.asarray(out["llc/per_chain"]),
                             np.asarray(fixed["llc/per_chain"]), rtol=1e-6)


def test_a_grid_that_no_step_passes_falls_back_to_its_smallest_and_says_so(regular):
  out = _auto(regular, [3e-2, 1e-1])  # both far past MALA's range
  assert not bool(out["autostep/ok"]) and int(out["autostep/index"]) == 0
  assert not np.asarray(out["autostep/passed"]).any()
  assert not bool(out["diag/ok"])  # and the estimate's own diagnostics fail it


def test_bad_grids_and_samplers_are_refused_in_one_line():
  assert autostep.check_grid(["4e-6", 1e-6, 1e-6], "sgld").tolist() == [1e-6, 4e-6]
  for grid, match in (([], "empty"), ([1e-6, 0.0], "> 0"), ([float("nan")], "> 0")):
    with pytest.raises(ConfigError, match=match):
      autostep.check_grid(grid, "sgld")
  with pytest.raises(ConfigError, match="only sgld and scale_invariant"):
    autostep.check_grid([1e-6], "rmsprop_sgld")
  assert autostep.check_grid([1e-6], "scale_invariant").tolist() == [1e-6]
  assert autostep.pilot_draws(6, 4) == 6 * autostep.PILOT_DRAWS * 2 * 2 / 4


def test_llc_over_training_and_the_cli_choose_per_checkpoint(tiny_run_dir, tmp_path):
  last = checkpoint.list_steps(tiny_run_dir)[-1]
  grid = (1e-5, 1e-4, 1e-3, 1e-1)
  settings = dict(sampler="sgld", localization=100.0, num_chains=2, num_draws=12,
                  num_burnin=2, batch_size=64)
  rows = apply.llc_over_training(runio.RunFolder.open(tiny_run_dir), key=jax.random.key(0),
                                 step_size=None, step_grid=grid, runs=[1], steps=[0, last],
                                 log=lambda s: None, **settings)
  assert {r["step_rule"] for r in rows} == {"auto"}
  assert all(r["step_size"] in grid and r["step_grid"] == "1e-05;0.0001;0.001;0.1"
             for r in rows)
  for r in rows:  # a passing ε was chosen wherever one passed, with its pilot's acceptance
    assert r["autostep_ok"] == (r["autostep_accept"] >= autostep.TARGET)
  fixed = apply.llc_over_training(runio.RunFolder.open(tiny_run_dir), key=jax.random.key(0),
                                  step_size=rows[1]["step_size"], runs=[1], steps=[last],
                                  log=lambda s: None, **settings)[0]
  assert fixed["step_rule"] == "fixed" and fixed["llc_mean"] == pytest.approx(
      rows[1]["llc_mean"], rel=1e-5)

  run_dir = tmp_path / "run"
  shutil.copytree(tiny_run_dir, run_dir)
  args = [sys.executable, "-m", "experiments.llc", f"--run_dir={run_dir}", "--runs=1",
          f"--steps=0,{last}", "--step_grid=1e-5,1e-4,1e-3,1e-1",
          *(f"--{k}={v}" for k, v in settings.items())]
  res = subprocess.run(args, capture_output=True, text=True, timeout=600)
  assert res.returncode == 0, res.stderr[-2000:]
  table = runio.read_csv(run_dir / "llc.csv")
  np.testing.assert_allclose(table["llc_mean"], [r["llc_mean"] for r in rows], rtol=1e-4)
  assert table["step_size"].tolist() == [r["step_size"] for r in rows]
  bad = subprocess.run(args[:-len(settings)] + ["--step_grid=1e-5,-1"], capture_output=True,
                       text=True, timeout=600)
  assert bad.returncode == 2 and "> 0" in bad.stderr
  other = subprocess.run(args + ["--sampler=rmsprop_sgld"], capture_output=True, text=True,
                         timeout=600)
  assert other.returncode == 2 and "only sgld" in other.stderr
