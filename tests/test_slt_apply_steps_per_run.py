"""LLC over training with each run's own checkpoints: what is read, and the rows."""

import jax
import numpy as np
import pytest

from grokjax import runio
from grokjax.errors import ConfigError
from grokjax.slt import apply

SETTINGS = dict(sampler="sgld", step_size=1e-4, localization=100.0, num_chains=2, num_draws=8,
                num_burnin=2, batch_size=64, log=lambda s: None)


def test_each_run_gets_its_own_checkpoints_padded_to_one_length(tiny_run_dir):
  folder = runio.RunFolder.open(tiny_run_dir)
  first, mid, last = folder.steps[0], folder.steps[len(folder.steps) // 2], folder.steps[-1]
  stacks = apply._stacked_params(folder, {0: [first, last], 2: [mid]})
  want0, want2 = folder.params([first, last], [0]), folder.params([mid, mid], [2])
  for got, want in ((stacks[0], want0), (stacks[2], want2)):  # run 2 repeats its last
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_array_equal(a, b[:, 0])


def test_steps_per_run_give_one_row_per_run_and_its_steps(tiny_run_dir):
  folder = runio.RunFolder.open(tiny_run_dir)
  first, mid, last = folder.steps[0], folder.steps[len(folder.steps) // 2], folder.steps[-1]
  rows = apply.llc_over_training(folder, key=jax.random.key(3), steps={0: [last, first],
                                                                       2: [mid]}, **SETTINGS)
  assert [(r["run"], r["step"]) for r in rows] == [(0, first), (0, last), (2, mid)]
  assert all(np.isfinite(r["llc_mean"]) for r in rows)


def test_steps_per_run_must_name_every_run_asked_for(tiny_run_dir):
  folder = runio.RunFolder.open(tiny_run_dir)
  with pytest.raises(ConfigError, match=r"no steps given for run\(s\) \[1\]"):
    apply.llc_over_training(folder, key=jax.random.key(0), runs=[0, 1],
                            steps={0: [folder.steps[-1]]}, **SETTINGS)
  with pytest.raises(ConfigError, match="not both"):
    apply.llc_over_training(folder, key=jax.random.key(0), steps={0: [0]}, every=2, **SETTINGS)
