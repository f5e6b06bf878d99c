"""Shared plumbing for the absl entry points in experiments/."""

from __future__ import annotations

import sys
from typing import Callable

from grokjax.errors import GrokjaxError


def run_main(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """Wraps an absl main so that a GrokjaxError prints one line and exits with status 2."""

  def wrapped(argv: list[str]) -> None:
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    try:
      main(argv)
    except GrokjaxError as e:
      print(f"error: {e}", file=sys.stderr)
      sys.exit(2)

  return wrapped


def parse_ints(text: str, name: str) -> list[int]:
  from grokjax.errors import ConfigError

  try:
    return [int(v) for v in text.split(",") if v.strip()]
  except ValueError as e:
    raise ConfigError(f"--{name} takes comma-separated integers, got {text!r}") from e


def load_run_dir(value: str | None):
  """--run_dir opened once as a runio.RunFolder; a one-line error when the flag is missing."""
  from grokjax import runio
  from grokjax.errors import ConfigError

  if value is None:
    raise ConfigError("--run_dir is required")
  return runio.RunFolder.open(value)


def use_cpu_devices(n: int | None) -> None:
  """Splits a CPU-only host into n XLA devices; must run before JAX starts its backend.

  JAX reads XLA_FLAGS when the first computation runs, not at import, so this works
  from an absl main. An explicit device count already in XLA_FLAGS wins.
  """
  import os

  flag = "--xla_force_host_platform_device_count"
  current = os.environ.get("XLA_FLAGS", "")
  if n and n > 1 and flag not in current:
    os.environ["XLA_FLAGS"] = f"{current} {flag}={n}".strip()


def cpu_device_count(n_runs: int) -> int:
  """The largest divisor of n_runs that is at most the number of CPU cores."""
  import os

  cores = os.cpu_count() or 1
  return max(d for d in range(1, min(cores, n_runs) + 1) if n_runs % d == 0)


SWEEP_LIST_FLAGS = {"ops": str, "seeds": int, "weight_decays": float, "lrs": float,
                    "train_fracs": float}
SWEEP_SCALAR_FLAGS = ("p", "steps", "batch_size", "model", "activation", "dtype", "grad_clip",
                      "eval_every", "ckpt_every")


def sweep_config_from_flags(flag_values, preset: str):
  """A preset's SweepConfig with every explicitly given flag applied on top."""
  import dataclasses

  from grokjax.config import PRESETS
  from grokjax.errors import ConfigError

  if preset not in PRESETS:
    raise ConfigError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
  changes = {}
  for name, kind in SWEEP_LIST_FLAGS.items():
    values = getattr(flag_values, name, None)
    if values is not None:
      try:
        changes[name] = tuple(kind(v) for v in values)
      except ValueError as e:
        raise ConfigError(f"--{name}: {e}") from e
  for name in SWEEP_SCALAR_FLAGS:
    value = getattr(flag_values, name, None)
    if value is not None:
      changes[name] = value
  for single, plural in (("lr", "lrs"), ("train_frac", "train_fracs")):
    value = getattr(flag_values, single, None)
    if value is not None:
      changes[plural] = (value,)
  cfg = dataclasses.replace(PRESETS[preset], **changes)
  cfg.validate()
  return cfg
