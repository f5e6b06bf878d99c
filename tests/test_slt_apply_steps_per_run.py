"""LLC over training with each run's own checkpoints: the same estimates as one list."""

import jax
import numpy as np
import pytest

from grokjax import runio
from grokjax.errors import ConfigError
from grokjax.slt import apply

SETTINGS = dict(sampler="sgld", step_size=1e-4, localization=100.0, num_chains=2, num_draws=8,
                num_burnin=2, batch_size=64, log=lambda s: None)


def test_steps_per_run_give_the_estimates_of_one_common_list(tiny_run_dir):
  folder = runio.RunFolder.open(tiny_run_dir)
  first, mid, last = folder.steps[0], folder.steps[len(folder.steps) // 2], folder.steps[-1]
  key = jax.random.key(3)
  per = apply.llc_over_training(folder, key=key, steps={0: [last, first], 2: [mid]}, **SETTINGS)
  assert [(r["run"], r["step"]) for r in per] == [(0, first), (0, last), (2, mid)]
  common = apply.llc_over_training(folder, key=key, runs=[0, 2], steps=[first, mid, last],
                                   **SETTINGS)
  want = {(r["run"], r["step"]): r for r in common}
  for r in per:  # run 2's one checkpoint runs padded to two: its estimate is unchanged
    w = want[r["run"], r["step"]]
    for k in ("llc_mean", "llc_std", "init_loss", "diag_rhat"):
      np.testing.assert_allclose(r[k], w[k], rtol=1e-5, err_msg=k)


def test_steps_per_run_must_name_every_run_asked_for(tiny_run_dir):
  folder = runio.RunFolder.open(tiny_run_dir)
  with pytest.raises(ConfigError, match=r"no steps given for run\(s\) \[1\]"):
    apply.llc_over_training(folder, key=jax.random.key(0), runs=[0, 1],
                            steps={0: [folder.steps[-1]]}, **SETTINGS)
  with pytest.raises(ConfigError, match="not both"):
    apply.llc_over_training(folder, key=jax.random.key(0), steps={0: [0]}, every=2, **SETTINGS)
