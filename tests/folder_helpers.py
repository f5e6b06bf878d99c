"""Run folders without training: a config.json and random parameters at chosen steps."""

from __future__ import annotations

import pathlib
from typing import Sequence

import jax
import numpy as np

from grokjax import checkpoint, runio
from grokjax.config import SweepConfig
from grokjax.model import init_params


def random_run_folder(out: pathlib.Path, cfg: SweepConfig, steps: Sequence[int]) -> pathlib.Path:
  """`out` as a run folder of `cfg` whose parameters at `steps` are seeded normal draws."""
  runio.write_config(out, cfg, ["cpu"])
  shapes = jax.eval_shape(lambda: init_params(cfg.model_config, jax.random.key(0)))
  mgr = checkpoint.manager(out, checkpoint.PARAMS)
  rng = np.random.default_rng(0)
  for step in steps:
    checkpoint.save(mgr, step, jax.tree.map(
        lambda s: rng.normal(size=(len(cfg.runs), *s.shape)).astype(np.float32), shapes))
  mgr.close()
  return out
