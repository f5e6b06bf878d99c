"""Shared plumbing for the absl entry points in experiments/."""

from __future__ import annotations

import sys
from typing import Callable

from grokjax.errors import ConfigError, GrokjaxError, RunFolderError


def run_main(main: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """Wraps an absl main so that a GrokjaxError prints one line and exits with its exit_code.

  grokjax.errors lists the codes: 2 for bad input or a run-folder problem, 3 for a
  sweep that finished with diverged runs (DivergenceError).

  In a job of several processes the exit skips JAX's shutdown, which would wait for
  the other processes (grokjax.multihost.fail_now), and a JAX runtime error there (a
  collective or an orbax barrier that lost a peer) is one line too.
  """

  def wrapped(argv: list[str]) -> None:
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
    try:
      check_no_arguments(argv)
      main(argv)
    except GrokjaxError as e:
      from grokjax import multihost

      if multihost.joined():
        multihost.fail_now(str(e), e.exit_code)
      print(f"error: {e}", file=sys.stderr)
      sys.exit(e.exit_code)
    except RuntimeError as e:
      from grokjax import multihost

      if multihost.joined() and type(e).__name__ == "JaxRuntimeError":
        multihost.fail_now(str(multihost.gather_failed(e)))
      raise

  return wrapped


def check_no_arguments(argv: list[str]) -> None:
  """Every CLI takes flags only: a stray word (a flag missing its --) is refused."""
  if len(argv) > 1:
    raise ConfigError(f"unexpected argument(s): {' '.join(argv[1:])} (flags take the form "
                      "--name=value)")


def parse_ints(text: str, name: str) -> list[int]:
  """Comma-separated distinct integers (steps, runs, seeds)."""
  try:
    values = [int(v) for v in text.split(",") if v.strip()]
  except ValueError as e:
    raise ConfigError(f"--{name} takes comma-separated integers, got {text!r}") from e
  check_unique(name, values)
  return values


def check_unique(name: str, values) -> None:
  """A list flag whose repeats would do the same work twice (or write one row twice)."""
  values = list(values)
  repeated = list(dict.fromkeys(v for v in values if values.count(v) > 1))
  if repeated:
    raise ConfigError(f"--{name} repeats {', '.join(map(str, repeated))}")


def check_positive(**values) -> None:
  """Each flag given as name=value must be > 0 (None: not given, the default applies)."""
  _check_range(values, lambda v: v > 0, "> 0")


def check_non_negative(**values) -> None:
  """Each flag given as name=value must be >= 0 (None: not given)."""
  _check_range(values, lambda v: v >= 0, ">= 0")


def _check_range(values: dict, ok: Callable, bound: str) -> None:
  for name, v in values.items():
    if v is not None and not ok(v):
      raise ConfigError(f"--{name} must be {bound}, got {v}")


def check_columns(table: dict | None, names, path) -> None:
  """A table read as input (e.g. metrics.csv for a figure) has these numeric columns; None
  (no such file) passes. Checked before the work, so a bad file leaves nothing written."""
  if table is None:
    return
  bad = [n for n in names if n not in table or (n != "op" and table[n].dtype.kind not in "fi")]
  if bad:
    raise RunFolderError(f"{path}: column(s) {', '.join(bad)} missing or not numeric")


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

  check_positive(cpu_devices=n)
  flag = "--xla_force_host_platform_device_count"
  current = os.environ.get("XLA_FLAGS", "")
  if n and n > 1 and flag not in current:
    os.environ["XLA_FLAGS"] = f"{current} {flag}={n}".strip()


def default_compilation_cache() -> str:
  """The per-user cache folder: $XDG_CACHE_HOME/grokjax/jax (~/.cache/grokjax/jax)."""
  import os

  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "grokjax", "jax")


def use_compilation_cache(path: str | None) -> None:
  """Keeps compiled programs in JAX's persistent compilation cache under `path`.

  A rerun, a resume or another host with the same program, jax version, devices and
  XLA flags loads the executable instead of compiling it (the key covers all of
  them, so a stale entry cannot be used). '' or None leaves the cache off. In a job of
  several processes only process 0 writes entries, so the folder should be shared.

  >>> # use_compilation_cache(default_compilation_cache())
  """
  import os

  if not path:
    return
  import jax

  jax.config.update("jax_compilation_cache_dir", os.path.expanduser(path))


def join_job(coordinator: str | None, num_processes: int, process_id: int | None, *,
             timeout_s: int, heartbeat_s: int) -> None:
  """--distributed: joins a job of several processes (grokjax.multihost.initialize).

  Without --coordinator, JAX finds the job from the cluster (a TPU pod slice, SLURM,
  Open MPI, ...); with it, --num_processes and --process_id are required.
  """
  import jax

  from grokjax import multihost
  from grokjax.errors import ConfigError

  if coordinator is None:
    jax.distributed.initialize(initialization_timeout=timeout_s,
                               heartbeat_timeout_seconds=heartbeat_s)
    return
  if num_processes < 1 or process_id is None or not 0 <= process_id < num_processes:
    raise ConfigError(f"--coordinator needs --num_processes >= 1 and 0 <= --process_id < "
                      f"--num_processes, got {num_processes} and {process_id}")
  multihost.initialize(coordinator, num_processes, process_id, timeout_s=timeout_s,
                       heartbeat_s=heartbeat_s)


def cpu_device_count(n_runs: int) -> int:
  """The largest divisor of n_runs that is at most the number of CPU cores."""
  import os

  cores = os.cpu_count() or 1
  return max(d for d in range(1, min(cores, n_runs) + 1) if n_runs % d == 0)


SWEEP_LIST_FLAGS = {"ops": str, "seeds": int, "weight_decays": float, "lrs": float,
                    "train_fracs": float, "grokfast_alphas": float, "grokfast_lambs": float,
                    "grokfast_windows": int, "weight_norms": float, "ckpt_steps": int}
SWEEP_SCALAR_FLAGS = ("p", "steps", "batch_size", "model", "activation", "dtype", "grad_clip",
                      "eval_every", "ckpt_every", "grokfast_filter", "ckpt_log_points",
                      "ckpt_trigger_acc", "ckpt_trigger_loss", "max_checkpoint_gb")


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
  if getattr(flag_values, "ckpt_trigger_off", None):
    # a float flag cannot be None, and 0 is refused: this turns a preset's trigger off
    from grokjax.config import TRIGGER_FIELDS

    given = [n for n in TRIGGER_FIELDS if n in changes]
    if given:
      raise ConfigError(f"--ckpt_trigger_off and --{given[0]} contradict each other; give one")
    changes.update(dict.fromkeys(TRIGGER_FIELDS))
  cfg = dataclasses.replace(PRESETS[preset], **changes)
  cfg.validate()
  return cfg
