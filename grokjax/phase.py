"""Phase diagrams: a 2-D grid of per-run fields x seeds as one sweep, and each cell's phase.

(a) `grid_config` turns a `GridSpec` (two per-run fields of `RunSpec`, their values,
the seeds) into ONE SweepConfig, so the whole grid trains as one compiled program, and
refuses a grid whose runs would not fit a memory budget (`bytes_per_run`).
(b) `classify` names a run's phase from its first steps with train and test accuracy
>= `threshold` (0.99), in the style of Liu et al. 2022's phase diagrams:

- no_learning: train accuracy never reaches the threshold;
- memorisation: train reaches it, test never does (within the trained steps);
- grokking: test reaches it at a step >= `delay_factor` (2) times the train step;
- comprehension: test reaches it with less delay than that.

Liu et al. separate grokking from comprehension by an absolute delay (10^3 steps of
10^4); a ratio is used here so that one rule serves runs of any length. Phases are
relative to the trained steps: a memorising run may grok later.
(c) `cell_rows` (one row per grid point x seed) and `aggregate` (one row per grid point:
median steps over the seeds that reached them, majority phase; ties go to the phase
listed first in PHASES, the one that claims less generalisation).

>>> # cfg = grid_config(PRESETS["tiny"], GridSpec("weight_decay", "train_frac",
>>> #                   (0.0, 1.0), (0.3, 0.6), (0, 1)))
"""

from __future__ import annotations

import collections
import dataclasses
import math

import jax
import numpy as np

from grokjax.config import RUN_AXES, SweepConfig
from grokjax.errors import ConfigError

PHASES = ("no_learning", "memorisation", "grokking", "comprehension")
DELAY_FACTOR = 2.0
THRESHOLD = 0.99
# The fields a grid may put on its axes: per-run fields, other than op (categorical) and
# seed (the replicate axis of every cell).
GRID_FIELDS = tuple(k for k in RUN_AXES if k not in ("op", "seed"))
DEFAULT_BUDGET_BYTES = 8 * 2 ** 30


@dataclasses.dataclass(frozen=True)
class GridSpec:
  x: str
  y: str
  x_values: tuple
  y_values: tuple
  seeds: tuple[int, ...]


def _check_axis(flag: str, field: str) -> None:
  if field in ("op", "seed"):
    raise ConfigError(f"--{flag}={field}: {field} is not a grid axis (use --{field}s); "
                      f"valid: {', '.join(GRID_FIELDS)}")
  if field in {f.name for f in dataclasses.fields(SweepConfig)}:
    raise ConfigError(f"--{flag}={field}: {field} is the same for every run of a sweep; "
                      f"per-run fields: {', '.join(GRID_FIELDS)}")
  if field not in GRID_FIELDS:
    raise ConfigError(f"--{flag}={field}: unknown field; per-run fields: {', '.join(GRID_FIELDS)}")


def _check_values(flag: str, values) -> None:
  if not values:
    raise ConfigError(f"--{flag} is empty")
  dup = [v for v, n in collections.Counter(values).items() if n > 1]
  if dup:
    raise ConfigError(f"--{flag} has a duplicate value {dup[0]!r}")


def bytes_per_run(cfg: SweepConfig) -> int:
  """Estimated device bytes one run of `cfg` holds while training and evaluating.

  The exact size of its TrainState (params, AdamW moments, any Grokfast EMA or MA ring
  buffer), plus gradients and updates (2 x params), its example table, and the
  activations of a minibatch and of an evaluation chunk (float32, per example
  seq_len x n_layers x (10 d_model + 3 d_mlp + 2 n_heads seq_len): a rough upper bound).
  """
  from grokjax import train  # jax programs only when asked

  spec = cfg.runs[0]
  hyper = {k: v[0] for k, v in train.run_hypers([spec]).items()}
  state = jax.eval_shape(lambda k: train.init_state(cfg, k, **hyper), jax.random.key(0))
  state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
  param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state.params))
  m = cfg.model_config
  n_examples = cfg.p * cfg.p
  per_example = m.seq_len * m.n_layers * (10 * m.d_model + 3 * m.d_mlp + 2 * m.n_heads * m.seq_len)
  acts = 4 * per_example * (cfg.batch_size + min(cfg.eval_chunk, n_examples))
  data = n_examples * (4 * m.seq_len + 4 + 1)
  return int(state_bytes + 2 * param_bytes + acts + data)


def grid_config(base: SweepConfig, grid: GridSpec,
                budget_bytes: int = DEFAULT_BUDGET_BYTES) -> SweepConfig:
  """The one SweepConfig that trains every (x, y, seed) of `grid`, validated."""
  _check_axis("x", grid.x)
  _check_axis("y", grid.y)
  if grid.x == grid.y:
    raise ConfigError(f"--x and --y are both {grid.x}; pick two different fields")
  _check_values("x_values", grid.x_values)
  _check_values("y_values", grid.y_values)
  _check_values("seeds", grid.seeds)
  for field, name in RUN_AXES.items():
    if field not in (grid.x, grid.y, "seed") and len(getattr(base, name)) != 1:
      raise ConfigError(f"--{name} has {len(getattr(base, name))} values but {field} is not "
                        "a grid axis; give it one value")
  cfg = dataclasses.replace(base, **{RUN_AXES[grid.x]: tuple(grid.x_values),
                                     RUN_AXES[grid.y]: tuple(grid.y_values),
                                     "seeds": tuple(grid.seeds)})
  cfg.validate()
  n = len(cfg.runs)
  per = bytes_per_run(cfg)
  if n * per > budget_bytes:
    raise ConfigError(
        f"--x_values x --y_values x --seeds = {len(grid.x_values)} x {len(grid.y_values)} x "
        f"{len(grid.seeds)} = {n} runs need ~{n * per / 2**30:.1f} GiB ({per / 2**20:.1f} MiB "
        f"per run), over the --memory_budget_gb={budget_bytes / 2**30:g} budget")
  return cfg


def classify(memorisation_step, grok_step, delay_factor: float = DELAY_FACTOR) -> str:
  """The phase of one run from its first train / test steps at the threshold (None: never)."""
  if memorisation_step is None:
    return "no_learning"
  if grok_step is None:
    return "memorisation"
  if grok_step > memorisation_step and grok_step >= delay_factor * memorisation_step:
    return "grokking"
  return "comprehension"


def _step(v):
  return None if v == "" or v is None or (isinstance(v, float) and math.isnan(v)) else int(v)


def cell_rows(cfg: SweepConfig, grid: GridSpec, summary: list[dict],
              delay_factor: float = DELAY_FACTOR) -> list[dict]:
  """One row per run of `sweep.summarize(cfg, ...)`: x, y, seed, steps, final acc, phase.

  A step that was never reached is NaN.
  """
  rows = []
  for r in summary:
    spec = cfg.runs[int(r["run"])]
    fit, grok = _step(r["train_acc_099_step"]), _step(r["test_acc_099_step"])
    rows.append({"run": int(r["run"]), grid.x: getattr(spec, grid.x),
                 grid.y: getattr(spec, grid.y), "seed": spec.seed,
                 "memorisation_step": math.nan if fit is None else fit,
                 "grok_step": math.nan if grok is None else grok,
                 "final_train_acc": float(r["final_train_acc"]),
                 "final_test_acc": float(r["final_test_acc"]),
                 "phase": classify(fit, grok, delay_factor)})
  return rows


def _median(values) -> float:
  v = np.asarray([x for x in values if not math.isnan(x)], np.float64)
  return float(np.median(v)) if v.size else math.nan


def aggregate(rows: list[dict], x: str, y: str) -> list[dict]:
  """Per (x, y) cell over its seeds: medians, phase counts and the majority phase."""
  cells: dict[tuple, list[dict]] = {}
  for r in rows:
    cells.setdefault((r[x], r[y]), []).append(r)
  out = []
  for (xv, yv), grp in cells.items():
    counts = collections.Counter(r["phase"] for r in grp)
    top = max(counts.values())
    majority = next(p for p in PHASES if counts[p] == top)
    out.append({x: xv, y: yv, "n_seeds": len(grp),
                "median_memorisation_step": _median(r["memorisation_step"] for r in grp),
                "median_grok_step": _median(r["grok_step"] for r in grp),
                "median_final_test_acc": float(np.median([r["final_test_acc"] for r in grp])),
                **{f"n_{p}": counts[p] for p in PHASES}, "phase": majority})
  return out
