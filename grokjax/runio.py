"""Run-folder files: config.json with provenance, and tidy CSV tables.

A run folder holds `config.json` (the full SweepConfig, the table of runs, package
versions, the git commit and the devices), tidy CSV tables (`metrics.csv`,
`measures.csv`, `causal.csv`, `llc.csv`: one row per run x step [x ...], with the
run's op/seed/weight_decay/lr/train_frac columns), `checkpoints/` and figures.
"""

from __future__ import annotations

import csv
import datetime
import importlib.metadata
import json
import math
import os
import pathlib
import subprocess
from typing import Iterable, Sequence

import numpy as np

from grokjax.config import RunSpec, SweepConfig
from grokjax.errors import RunFolderError

RUN_COLUMNS = ("run", "op", "seed", "weight_decay", "lr", "train_frac")
# after RUN_COLUMNS, in sweeps whose optimizer has them (config.OPTIMIZER_FIELDS)
OPTIMIZER_COLUMNS = ("grokfast_alpha", "grokfast_lamb", "grokfast_window", "weight_norm")
PACKAGES = ("grokjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "pybdm",
            "matplotlib", "absl-py")


def package_versions() -> dict[str, str]:
  out = {}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = "not installed"
  return out


def git_commit() -> str:
  """The commit of the grokjax source tree (with '+dirty' for local changes), or 'unknown'."""
  here = pathlib.Path(__file__).resolve().parent
  try:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                         check=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, check=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return sha + ("+dirty" if dirty else "")


def run_fields(index: int, spec: RunSpec) -> dict:
  return {"run": index, "op": spec.op, "seed": spec.seed, "weight_decay": spec.weight_decay,
          "lr": spec.lr, "train_frac": spec.train_frac, **spec.optimizer_fields}


def provenance(devices: Sequence[str]) -> dict:
  """What every config.json records beside the config: versions, commit, devices, time."""
  return {
      "versions": package_versions(),
      "git_commit": git_commit(),
      "devices": list(devices),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


def write_config(run_dir: str | os.PathLike, cfg: SweepConfig, devices: Sequence[str]) -> None:
  record = {"config": cfg.to_dict(),
            "runs": [run_fields(i, s) for i, s in enumerate(cfg.runs)],
            **provenance(devices)}
  path = pathlib.Path(run_dir) / "config.json"
  path.write_text(json.dumps(record, indent=2) + "\n")


def load_config(run_dir: str | os.PathLike) -> SweepConfig:
  """The SweepConfig a run folder was trained with."""
  path = pathlib.Path(run_dir) / "config.json"
  if not path.is_file():
    raise RunFolderError(f"{run_dir} is not a run folder: {path} does not exist")
  try:
    return SweepConfig.from_dict(json.loads(path.read_text())["config"])
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise RunFolderError(f"cannot read {path}: {e}") from e


def find_run(cfg: SweepConfig, *, op: str | None = None, seed: int | None = None,
             weight_decay: float | None = None, lr: float | None = None,
             train_frac: float | None = None) -> int:
  """Index of the one run matching the given fields (the others may be left out)."""
  want = {"op": op, "seed": seed, "weight_decay": weight_decay, "lr": lr,
          "train_frac": train_frac}
  want = {k: v for k, v in want.items() if v is not None}
  hits = [i for i, s in enumerate(cfg.runs)
          if all(getattr(s, k) == v for k, v in want.items())]
  if len(hits) != 1:
    have = ", ".join(s.label for s in cfg.runs)
    what = "no run" if not hits else f"{len(hits)} runs"
    raise RunFolderError(f"{what} match {want}; the folder has: {have}")
  return hits[0]


def filter_runs(cfg: SweepConfig, *, ops=None, weight_decays=None, seeds=None,
                runs: Sequence[int] | None = None) -> list[int]:
  """Indices of the runs (optionally among `runs`) whose op, weight decay and seed are
  among those given (None keeps all); raises RunFolderError naming the runs when none is."""
  wds = None if weight_decays is None else [float(w) for w in weight_decays]
  seeds = None if seeds is None else [int(v) for v in seeds]
  pool = range(len(cfg.runs)) if runs is None else [r for r in runs if 0 <= r < len(cfg.runs)]
  keep = [i for i in pool
          if (ops is None or cfg.runs[i].op in ops)
          and (wds is None or cfg.runs[i].weight_decay in wds)
          and (seeds is None or cfg.runs[i].seed in seeds)]
  if not keep:
    raise RunFolderError("no run matches the --runs/--ops/--weight_decays/--seeds filters; "
                         f"the folder has: {', '.join(s.label for s in cfg.runs)}")
  return keep


def _cell(v) -> str:
  if isinstance(v, (float, np.floating)):
    return repr(float(v)) if math.isfinite(v) else str(float(v))
  if isinstance(v, np.integer):
    return str(int(v))
  return str(v)


def write_csv(path: str | os.PathLike, rows: Iterable[dict], append: bool = False) -> None:
  """Writes (or appends) dict rows; the header is the first row's keys."""
  rows = list(rows)
  if not rows:
    return
  path = pathlib.Path(path)
  exists = append and path.is_file() and path.stat().st_size > 0
  with open(path, "a" if exists else "w", newline="") as f:
    writer = csv.writer(f)
    keys = list(rows[0])
    if exists:
      with open(path, newline="") as g:
        keys = next(csv.reader(g))
    else:
      writer.writerow(keys)
    for row in rows:
      writer.writerow([_cell(row[k]) for k in keys])


def _parse(values: list[str]) -> np.ndarray:
  try:
    return np.array([int(v) for v in values], dtype=np.int64)
  except ValueError:
    pass
  try:
    return np.array([float(v) for v in values], dtype=np.float64)
  except ValueError:
    return np.array(values, dtype=object)


def read_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """A tidy CSV as columns: int64, float64 or object (strings) arrays."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise RunFolderError(f"{path} does not exist")
  with open(path, newline="") as f:
    reader = csv.reader(f)
    header = next(reader, None)
    rows = list(reader)
  if header is None:
    return {}
  cols = list(zip(*rows)) if rows else [() for _ in header]
  return {k: _parse(list(c)) for k, c in zip(header, cols)}
