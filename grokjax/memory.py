"""Will a sweep fit? Its memory estimate against the free memory of its devices.

`train_sweep` calls `check_sweep` before it allocates anything, so a batch that
cannot fit is refused in one line (`ConfigError`) instead of an XLA out-of-memory
trace minutes later. Per run the estimate is

  state        params, AdamW moments, Grokfast buffers and hyperparameters: exact,
               from `jax.eval_shape` of the run's initial state (nothing is allocated)
  gradients    GRAD_COPIES float32 copies of the params (the gradients, and the
               updates the optimizer chain forms from them)
  activations  the larger of the training step's (batch x bytes per example) and
               the evaluation's (eval_chunk examples, forward only: one block live)
  host copy    on a CPU only, the state once more: the sweep builds it on the host
               (numpy) before placing it on the devices, which there share that memory

Activations per example are an upper bound, in the compute dtype (`ModelConfig.dtype`):
a block saves at most T (12 d + 3 d_mlp) values for its backward pass plus the
float32 scores and the pattern, H T^2 each. Without remat every block keeps that;
with remat a block keeps only its input (T d) and one block at a time is recomputed,
so the step holds L T d + 2 blocks' worth. Runs are split over the devices; host CPU
devices share one memory, so on a CPU the runs of all local devices are added up.

>>> from grokjax.config import PRESETS
>>> est = estimate(PRESETS["tiny"])
>>> check_fits(PRESETS["tiny"], est, runs=1, available=2**30, where="host memory")  # fits
"""

from __future__ import annotations

import os
import pathlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.config import ModelConfig, SweepConfig
from grokjax.errors import ConfigError

GRAD_COPIES = 2
GIB = 2**30


def block_bytes(cfg: ModelConfig) -> int:
  """Upper bound on what one block saves for its backward pass, per example."""
  b = np.dtype(cfg.dtype).itemsize
  T, d, m, H = cfg.seq_len, cfg.d_model, cfg.d_mlp, cfg.n_heads
  return T * (12 * d + 3 * m) * b + H * T * T * (4 + b)


def train_bytes_per_example(cfg: ModelConfig) -> int:
  """Activations of one example in a training step (forward kept for backward)."""
  b = np.dtype(cfg.dtype).itemsize
  kept = cfg.seq_len * cfg.d_model * b if cfg.remat else block_bytes(cfg)
  embed = cfg.seq_len * cfg.d_model * 4  # the float32 embedding lookup
  return cfg.n_layers * kept + 2 * block_bytes(cfg) + embed


def eval_bytes_per_example(cfg: ModelConfig) -> int:
  """Activations of one example in a forward-only pass, where one block's values are
  live at a time: its input and output, the MLP's hidden layer twice, the scores."""
  b = np.dtype(cfg.dtype).itemsize
  T, d, m, H = cfg.seq_len, cfg.d_model, cfg.d_mlp, cfg.n_heads
  return T * (4 * d + 2 * m) * b + H * T * T * (4 + b)


class Estimate(NamedTuple):
  """Bytes per run; `total(batch)` is one run's footprint at that batch size."""

  state: int
  gradients: int
  train_per_example: int
  eval_activations: int
  host_copy: int = 0

  def activations(self, batch: int) -> int:
    return max(batch * self.train_per_example, self.eval_activations)

  def total(self, batch: int) -> int:
    return self.state + self.gradients + self.activations(batch) + self.host_copy


def estimate(cfg: SweepConfig, *, host_copy: bool = False) -> Estimate:
  """The per-run memory estimate of a sweep (pure: traces shapes, allocates nothing);
  `host_copy`: the devices are the host's CPU, so the host copy of the state counts."""
  from grokjax.train import init_state, run_hypers  # train imports the model; keep this light

  # arrays, not numpy scalars: inject_hyperparams would take a scalar for a static argument
  hypers = {k: jnp.asarray(v[0]) for k, v in run_hypers(cfg.runs[:1]).items()}
  shapes = jax.eval_shape(lambda k: init_state(cfg, k, **hypers), jax.random.key(0))
  nbytes = lambda tree: sum(int(np.prod(a.shape)) * a.dtype.itemsize
                            for a in jax.tree.leaves(tree))
  mc = cfg.model_config
  n_eval = min(cfg.eval_chunk, cfg.p * cfg.p)
  return Estimate(state=nbytes(shapes), gradients=GRAD_COPIES * nbytes(shapes.params),
                  train_per_example=train_bytes_per_example(mc),
                  eval_activations=n_eval * eval_bytes_per_example(mc),
                  host_copy=nbytes(shapes) if host_copy else 0)


def largest_batch(est: Estimate, runs: int, available: int) -> int:
  """The largest batch size whose estimate fits (0: none does)."""
  budget = available // runs - est.state - est.gradients - est.host_copy
  if budget < est.eval_activations:
    return 0
  return int(budget // est.train_per_example)


def check_fits(cfg: SweepConfig, est: Estimate, *, runs: int, available: int,
               where: str) -> None:
  """Raises ConfigError (one line) when `runs` runs at cfg.batch_size exceed `available`."""
  need = runs * est.total(cfg.batch_size)
  if need <= available:
    return
  best = largest_batch(est, runs, available)
  advice = (f"at most batch_size={best} fits" if best else
            "no batch size fits; use fewer runs per device or a larger device")
  raise ConfigError(
      f"batch_size={cfg.batch_size} needs about {need / GIB:.2f} GiB for {runs} run(s) "
      f"(per run: state {est.state / GIB:.2f} GiB, gradients {est.gradients / GIB:.2f} GiB, "
      f"activations {est.activations(cfg.batch_size) / GIB:.2f} GiB"
      + (f", host copy {est.host_copy / GIB:.2f} GiB" if est.host_copy else "")
      + f") but {where} has "
      f"{available / GIB:.2f} GiB available; {advice}")


def host_available_bytes() -> int | None:
  """MemAvailable from /proc/meminfo, else the free physical pages (os.sysconf)."""
  meminfo = pathlib.Path("/proc/meminfo")
  if meminfo.is_file():
    for line in meminfo.read_text().splitlines():
      if line.startswith("MemAvailable:"):
        return int(line.split()[1]) * 1024
  names = os.sysconf_names if hasattr(os, "sysconf_names") else {}
  if "SC_AVPHYS_PAGES" in names and "SC_PAGE_SIZE" in names:
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
  return None


def device_available_bytes(device) -> int | None:
  """bytes_limit - bytes_in_use from a GPU/TPU's memory_stats(), None where it has none."""
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if not stats or "bytes_limit" not in stats:
    return None
  return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))


USABLE = 0.9  # share of the free memory a sweep may plan to use


def check_sweep(cfg: SweepConfig, devices=None) -> None:
  """check_fits for the sweep on `devices` (default: all); skipped where the free
  memory cannot be read (a backend without memory_stats)."""
  devices = list(jax.devices() if devices is None else devices)
  per_device = -(-len(cfg.runs) // len(devices))
  local = [d for d in devices if d.process_index == jax.process_index()] or devices
  if local[0].platform == "cpu":
    runs, available, where = per_device * len(local), host_available_bytes(), "host memory"
  else:
    free = [device_available_bytes(d) for d in local]
    runs, available = per_device, None if None in free else min(free)
    where = f"each {local[0].platform} device"
  if available is not None:
    est = estimate(cfg, host_copy=local[0].platform == "cpu")
    # the estimate has no slack for XLA's temporaries: a GPT-2-large CPU step estimated at
    # 21.6 GiB passed against 22 GiB free and was killed at 21.8 GiB in use
    check_fits(cfg, est, runs=runs, available=int(available * USABLE),
               where=f"{where} ({USABLE:.0%} of the free {available / GIB:.2f} GiB)")
