"""Applying the lenses to a run folder: `DIR/measures.csv`, one row per run x step.

For each batch of `step_batch` saved checkpoints, the stacked parameters of every
run are loaded, and the jittable lenses (spectral, fourier, geometry, progress, and
the quantisation for BDM) run as one compiled function mapped over runs x checkpoints
(with each run's train mask alongside, which the progress lens reads):
`lax.map` in chunks of `vmap_size`, a `vmap` inside each chunk. The default
`vmap_size=1` is a plain scan: on jaxlib 0.10.2's CPU backend a program that holds
vmapped (batched) LAPACK calls — the SVDs of the spectral lens next to the Occam
gate's forward pass — deadlocked here (the batched SVD kernel waits forever in
`ParallelBatchMap`), and on a CPU a vmap over runs buys no throughput anyway. On a
GPU, raise `vmap_size`. Runs are grouped by
op, since the Fourier basis and the Occam-gate table depend on it. BDM scores the
quantised matrices of the whole batch at once with `bdm.lens_rows`: the `bdm/*`
columns as one compiled program, the block-gzip and zlib/lzma columns on the host, in
this process (the same values as `complexity.bdm_measures`). The progress lens
(`progress.progress_measures`, Nanda et al.'s key frequencies, restricted and excluded
loss) keys on each checkpoint's own `n_key` strongest frequencies; its non-scalar
entries are not written. After each batch the whole table is rewritten
atomically, so an interrupted job loses at most one batch; a re-run skips every
(run, step) whose columns for the asked lenses are already there, and adds the
columns of a lens measured later. Columns: the run fields of metrics.csv (run, op,
seed, weight_decay, lr, train_frac), step, then one column per scalar measure,
sorted; a value a row lacks is written as nan.

The geometry lens uses a fixed subset of `n_examples` examples of each op's full
table (train and test alike), the same for every run and checkpoint, drawn with
`example_seed`; its geometric complexity defaults to the Hutchinson estimate with
`n_probes` probes and the fixed key `example_seed` (the exact Jacobian costs one
backward pass per vocabulary entry and example, ~12x more at p = 97).

>>> # from grokjax.measures.apply import MeasureOptions, measure_run_dir
>>> # folder = runio.RunFolder.open("runs/demo")
>>> # measure_run_dir(folder, MeasureOptions(lenses=("spectral", "bdm"), every=500))
"""

from __future__ import annotations

import dataclasses
import math
import pathlib
import sys
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from grokjax import runio, tasks, train
from grokjax.config import SweepConfig
from grokjax.errors import ConfigError
from grokjax.measures import bdm, complexity, fourier, geometry, progress, spectral

MEASURES = "measures.csv"
LENSES = ("spectral", "fourier", "geometry", "bdm", "progress")
# a column every row measured by the lens has (a row without it still needs the lens)
SENTINEL = {"spectral": "param_norm", "fourier": "fourier/embed_gini", "geometry": "geometry/gc",
            "bdm": "bdm/2d/total", "progress": "progress/gini"}
KEY_COLUMNS = (*runio.RUN_COLUMNS, "step")


@dataclasses.dataclass
class MeasureOptions:
  lenses: tuple[str, ...] = LENSES
  steps: tuple[int, ...] | None = None  # saved steps to measure (None: all, or --every)
  every: int | None = None  # measure the saved steps that are multiples of this
  step_batch: int = 4  # checkpoints per compiled call
  vmap_size: int = 1  # runs x checkpoints vmapped at once inside the lax.map (1: a scan)
  n_examples: int = 256  # examples for the geometry lens
  example_seed: int = 0
  gc_method: str = "hutchinson"  # 'exact' costs vocab backward passes per example
  n_probes: int = 8
  levels: int = 4
  quantise: str = "quantile"
  y0: str = "model"  # Occam-gate table at y = 0, see fourier.answer_logit_table
  n_key: int = 3  # key frequencies of the progress lens

  def validate(self) -> None:
    bad = [l for l in self.lenses if l not in LENSES]
    if bad or not self.lenses:
      raise ConfigError(f"unknown lens {', '.join(bad) or '(none given)'}; "
                        f"valid: {', '.join(LENSES)}")
    for name in ("step_batch", "vmap_size", "n_examples", "n_key"):
      if getattr(self, name) < 1:
        raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
    if self.gc_method not in geometry.METHODS:
      raise ConfigError(f"unknown gc_method {self.gc_method!r}; "
                        f"valid: {', '.join(geometry.METHODS)}")
    if self.quantise not in complexity.METHODS:
      raise ConfigError(f"unknown quantisation {self.quantise!r}; "
                        f"valid: {', '.join(complexity.METHODS)}")


# ---------------------------------------------------------------- the table

def read_rows(path: pathlib.Path) -> dict[tuple[int, int], dict]:
  """Existing measures.csv rows keyed by (run, step); values as floats (strings for op)."""
  if not path.is_file():
    return {}
  table = runio.read_csv(path)
  kinds = {k: str if k == "op" else int if k in ("run", "seed", "step") else float
           for k in table}
  out = {}
  for i in range(len(table.get("run", ()))):
    vals = {k: kinds[k](col[i]) for k, col in table.items()}
    out[(vals["run"], vals["step"])] = vals
  return out


def write_rows(path: pathlib.Path, rows: dict[tuple[int, int], dict]) -> None:
  """The whole table, sorted by (run, step), written atomically (runio.write_csv)."""
  keys = sorted({k for r in rows.values() for k in r} - set(KEY_COLUMNS))
  ordered = [rows[k] for k in sorted(rows)]
  runio.write_csv(path, [{**{c: r[c] for c in KEY_COLUMNS},
                          **{k: r.get(k, math.nan) for k in keys}} for r in ordered])


def has_lens(row: dict | None, lens: str) -> bool:
  v = None if row is None else row.get(SENTINEL[lens])
  return v is not None and not (isinstance(v, float) and math.isnan(v))


# ---------------------------------------------------------------- compiled lenses

def example_subset(cfg: SweepConfig, op: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  inputs, targets = tasks.make_task(op, cfg.p)
  idx = np.sort(np.random.default_rng(seed).permutation(len(targets))[:n])
  return inputs[idx], targets[idx]


def lens_fn(cfg: SweepConfig, op: str, lenses: frozenset, opts: MeasureOptions):
  """jit of: (stacked params [n, ...], train masks [n, p (p - 1)]) -> (scalar measures [n],
  quantised matrices [n, ...])."""
  mc = cfg.model_config
  tokens, targets = map(jnp.asarray, example_subset(cfg, op, opts.n_examples, opts.example_seed))
  key = jax.random.key(opts.example_seed)

  def one(args):
    params, train_mask = args
    out = {}
    if "spectral" in lenses:
      out.update(spectral.spectral_measures(params))
    if "fourier" in lenses:
      out.update(fourier.fourier_measures(mc, params, p=cfg.p, op=op, y0=opts.y0))
    if "geometry" in lenses:
      out.update(geometry.geometry_measures(mc, params, tokens, targets, method=opts.gc_method,
                                            n_probes=opts.n_probes, key=key))
    if "progress" in lenses:
      out.update(progress.progress_measures(mc, params, p=cfg.p, op=op, train_mask=train_mask,
                                            n_key=opts.n_key, y0=opts.y0))
    scalars = {k: v.astype(jnp.float32) for k, v in out.items() if v.ndim == 0}
    codes = (complexity.quantise_tree(params, levels=opts.levels, method=opts.quantise)
             if "bdm" in lenses else {})
    return scalars, codes

  if opts.vmap_size <= 1:  # a scan: no batched LAPACK call (see the module docstring)
    return jax.jit(lambda stacked, masks: jax.lax.map(one, (stacked, masks)))
  return jax.jit(lambda stacked, masks: jax.lax.map(one, (stacked, masks),
                                                    batch_size=opts.vmap_size))


# ---------------------------------------------------------------- the driver

def _plan(cfg, steps, rows, lenses) -> list[tuple[int, frozenset]]:
  """(step, lenses still missing for some run at that step), for steps with work left."""
  plan = []
  for s in steps:
    need = frozenset(l for l in lenses if not all(has_lens(rows.get((i, s)), l)
                                                  for i in range(len(cfg.runs))))
    if need:
      plan.append((s, need))
  return plan


def _measure_batch(folder, batch, rows, opts, fns) -> None:
  """Measures the steps of one batch (same missing lenses) for every run into `rows`."""
  cfg = folder.cfg
  steps, need = [s for s, _ in batch], batch[0][1]
  padded = steps + steps[-1:] * (opts.step_batch - len(steps))  # fixed shapes: one compile
  groups: dict[str, list[int]] = {}
  for i, spec in enumerate(cfg.runs):
    groups.setdefault(spec.op, []).append(i)
  run_masks = np.stack([np.asarray(train.run_data(cfg, spec).is_train) for spec in cfg.runs])
  for op, idx in groups.items():
    # [steps, runs, ...] -> [steps * runs, ...], step-major as the loop below reads it
    params = jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), folder.params(padded, idx))
    masks = np.concatenate([run_masks[idx]] * len(padded))  # the same step-major order
    if (op, need) not in fns:  # one compiled function per op and lens set, reused by batches
      fns[(op, need)] = lens_fn(cfg, op, need, opts)
    scalars, codes = jax.device_get(fns[(op, need)](params, masks))
    n = len(steps) * len(idx)  # the rows of the padding steps are dropped
    bdm_rows = (bdm.lens_rows({k: v[:n] for k, v in codes.items()}, levels=opts.levels)
                if "bdm" in need else [{}] * n)
    for j, (s, i) in enumerate((s, i) for s in steps for i in idx):
      row = rows.setdefault((i, s), {**runio.run_fields(i, cfg.runs[i]), "step": s})
      row.update({k: float(v[j]) for k, v in scalars.items()})
      row.update(bdm_rows[j])


def measure_run_dir(folder: runio.RunFolder, opts: MeasureOptions | None = None, *,
                    write: Callable[[str], None] | None = None) -> pathlib.Path:
  """Measures the chosen saved steps of every run of a RunFolder into DIR/measures.csv."""
  opts = opts or MeasureOptions()
  opts.validate()
  write = write or (lambda s: print(s, file=sys.stderr, flush=True))
  cfg = folder.cfg
  steps = folder.choose_steps(steps=opts.steps, every=opts.every)
  path = folder.file(MEASURES)
  rows = read_rows(path)
  plan = _plan(cfg, steps, rows, opts.lenses)
  write(f"measure: {len(steps)} step(s) x {len(cfg.runs)} run(s), lenses {','.join(opts.lenses)}; "
        f"{len(steps) - len(plan)} step(s) already measured")
  fns: dict = {}
  t0, done = time.time(), 0
  while plan:
    batch = [b for b in plan if b[1] == plan[0][1]][: opts.step_batch]
    plan = [b for b in plan if b not in batch]
    _measure_batch(folder, batch, rows, opts, fns)
    write_rows(path, rows)
    done += len(batch)
    rate = (time.time() - t0) / done
    write(f"measure: {done}/{done + len(plan)} checkpoints | {rate:.1f} s/checkpoint | "
          f"ETA {rate * len(plan):.0f} s | last step {batch[-1][0]}")
  return path
