"""Shared fixtures: tiny sweeps trained once per session, reused by several test files."""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile

# Four host devices so the sharding tests can run; must be set before JAX starts.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
# OpenBLAS threads made one 128x512 SVD take ~1 s instead of 5 ms on a 2-core CPU.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# One persistent compilation cache per test run (JAX reads these at import): many tests build
# the same program from fresh closures (hyperparameters are data, so the shapes match), and
# the CLI tests' subprocesses inherit the folder, so they load what this process compiled
# instead of compiling it again. A fresh folder keeps every test run's first compile real.
_RUN_CACHE = None
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  _RUN_CACHE = tempfile.mkdtemp(prefix="grokjax-test-jax-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = _RUN_CACHE
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest  # noqa: E402

from grokjax.config import PRESETS  # noqa: E402


def pytest_sessionfinish(session, exitstatus):
  if _RUN_CACHE is not None:
    shutil.rmtree(_RUN_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_cfg():
  return dataclasses.replace(PRESETS["tiny"], steps=120, eval_every=40, ckpt_every=40, log_points=3)


@pytest.fixture(scope="session")
def tiny_run_dir(tmp_path_factory, tiny_cfg):
  """A finished tiny sweep (2 ops x 2 seeds) folder, for tests that read run folders."""
  from grokjax import sweep

  cfg = dataclasses.replace(tiny_cfg, ops=("add", "mul"), seeds=(0, 1))
  out = tmp_path_factory.mktemp("tiny_sweep")
  sweep.train_sweep(cfg, out, write=lambda s: None)
  return out
