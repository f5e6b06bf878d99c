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
atomically, so an interrupted job loses at most one batch.

Each row records, per lens, the options its values depend on (`LENS_OPTIONS`) in
the string column `options/<lens>`, e.g. `levels=4 quantise=quantile` for BDM
(spectral depends on none and has no such column). A re-run skips every (run, step)
whose columns for the asked lenses are there with the same options, adds the columns
of a lens measured later, and recomputes a lens whose recorded options differ from
the asked ones or were never recorded (tables written before the option columns),
saying which. Columns: the run fields of metrics.csv (run, op, seed, weight_decay, lr,
train_frac), step, the option columns, then one column per scalar measure, sorted; a
value a row lacks is written as nan (an option as the empty string).

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
# the MeasureOptions fields each lens's values depend on (n_probes: only with hutchinson)
LENS_OPTIONS = {"spectral": (), "fourier": ("y0",),
                "geometry": ("n_examples", "example_seed", "gc_method", "n_probes"),
                "bdm": ("levels", "quantise"), "progress": ("n_key", "y0")}
OPTIONS_PREFIX = runio.OPTIONS_PREFIX


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
    if len(set(self.lenses)) < len(self.lenses):
      raise ConfigError(f"lenses repeated: {', '.join(self.lenses)}")
    for name in ("step_batch", "vmap_size", "n_examples", "n_key", "n_probes"):
      if getattr(self, name) < 1:
        raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
    if not 2 <= self.levels <= max(complexity.TABLES_1D):
      raise ConfigError(f"levels must lie in [2, {max(complexity.TABLES_1D)}] (the largest "
                        f"1-D CTM table), got {self.levels}")
    if self.gc_method not in geometry.METHODS:
      raise ConfigError(f"unknown gc_method {self.gc_method!r}; "
                        f"valid: {', '.join(geometry.METHODS)}")
    if self.quantise not in complexity.METHODS:
      raise ConfigError(f"unknown quantisation {self.quantise!r}; "
                        f"valid: {', '.join(complexity.METHODS)}")

  def recorded(self, lens: str) -> str:
    """The options `lens`'s values depend on, as its measures.csv column holds them."""
    names = [n for n in LENS_OPTIONS[lens] if n != "n_probes" or self.gc_method == "hutchinson"]
    return " ".join(f"{n}={getattr(self, n)}" for n in names)


# ---------------------------------------------------------------- the table

def read_rows(path: pathlib.Path) -> dict[tuple[int, int], dict]:
  """Existing measures.csv rows keyed by (run, step); values as floats (strings for op)."""
  if not path.is_file():
    return {}
  table = runio.read_csv(path, numeric=runio.measures_numeric)
  kinds = {k: str if k == "op" or k.startswith(OPTIONS_PREFIX)
           else int if k in ("run", "seed", "step") else float for k in table}
  out = {}
  for i in range(len(table.get("run", ()))):
    vals = {k: kinds[k](col[i]) for k, col in table.items()}
    # an option cell of a row the lens never measured is empty (nan where no row has it)
    vals = {k: v for k, v in vals.items() if kinds[k] is not str or v not in ("", "nan")}
    out[(vals["run"], vals["step"])] = vals
  return out


def write_rows(path: pathlib.Path, rows: dict[tuple[int, int], dict]) -> None:
  """The whole table, sorted by (run, step), written atomically (runio.write_csv)."""
  keys = {k for r in rows.values() for k in r} - set(KEY_COLUMNS)
  options = sorted(k for k in keys if k.startswith(OPTIONS_PREFIX))
  measures = sorted(keys - set(options))
  ordered = [rows[k] for k in sorted(rows)]
  runio.write_csv(path, [{**{c: r[c] for c in KEY_COLUMNS}, **{k: r.get(k, "") for k in options},
                          **{k: r.get(k, math.nan) for k in measures}} for r in ordered])


def has_lens(row: dict | None, lens: str) -> bool:
  v = None if row is None else row.get(SENTINEL[lens])
  return v is not None and not (isinstance(v, float) and math.isnan(v))


def stale_reason(row: dict | None, lens: str, opts: MeasureOptions) -> str | None:
  """Why `row` needs `lens` (re)computed: 'missing', the options that changed ('levels 4
  -> 8'), or that none were recorded; None when its values are there for these options."""
  if not has_lens(row, lens):
    return "missing"
  want = opts.recorded(lens)
  have = row.get(OPTIONS_PREFIX + lens)
  if not want or have == want:
    return None
  if have is None:
    return "options not recorded (an older measures.csv)"
  old, new = (dict(kv.split("=", 1) for kv in s.split()) for s in (have, want))
  return ", ".join(f"{k} {old.get(k, 'unused')} -> {new.get(k, 'unused')}"
                   for k in LENS_OPTIONS[lens] if old.get(k) != new.get(k))


# ---------------------------------------------------------------- compiled lenses

def example_subset(cfg: SweepConfig, op: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
  inputs, targets = tasks.make_task(op, cfg.p)
  idx = np.sort(np.random.default_rng(seed).permutation(len(targets))[:n])
  return inputs[idx], targets[idx]


def lens_fn(cfg: SweepConfig, op: str, lenses: frozenset, opts: MeasureOptions):
  """jit of: (stacked params [n, ...], train masks [n, p (p - 1)]) -> ({lens: scalar
  measures [n]}, quantised matrices [n, ...])."""
  mc = cfg.model_config
  tokens, targets = map(jnp.asarray, example_subset(cfg, op, opts.n_examples, opts.example_seed))
  key = jax.random.key(opts.example_seed)

  def one(args):
    params, train_mask = args
    out = {}
    # the Occam gate and the progress losses read the same logit tables: one forward pass
    tables = (fourier.logit_tables(mc, params, p=cfg.p, op=op, y0=opts.y0)
              if {"fourier", "progress"} <= lenses and op in fourier.GROUP_OPS else None)
    if "spectral" in lenses:
      out["spectral"] = spectral.spectral_measures(params)
    if "fourier" in lenses:
      out["fourier"] = fourier.fourier_measures(mc, params, p=cfg.p, op=op, y0=opts.y0,
                                                tables=tables)
    if "geometry" in lenses:
      out["geometry"] = geometry.geometry_measures(mc, params, tokens, targets,
                                                   method=opts.gc_method,
                                                   n_probes=opts.n_probes, key=key)
    if "progress" in lenses:
      out["progress"] = progress.progress_measures(mc, params, p=cfg.p, op=op,
                                                   train_mask=train_mask, n_key=opts.n_key,
                                                   y0=opts.y0,
                                                   classes=None if tables is None else tables[1])
    scalars = {l: {k: v.astype(jnp.float32) for k, v in d.items() if v.ndim == 0}
               for l, d in out.items()}
    codes = (complexity.quantise_tree(params, levels=opts.levels, method=opts.quantise)
             if "bdm" in lenses else {})
    return scalars, codes

  if opts.vmap_size <= 1:  # a scan: no batched LAPACK call (see the module docstring)
    return jax.jit(lambda stacked, masks: jax.lax.map(one, (stacked, masks)))
  return jax.jit(lambda stacked, masks: jax.lax.map(one, (stacked, masks),
                                                    batch_size=opts.vmap_size))


# ---------------------------------------------------------------- the driver

def _plan(cfg, steps, rows, opts, runs=None) -> tuple[list[tuple[int, frozenset]], dict]:
  """(step, lenses to (re)compute for some run there) for the steps with work left, and
  {(lens, reason): steps} for the lenses recomputed because of their options. `runs`:
  the runs that count (default: all)."""
  runs = range(len(cfg.runs)) if runs is None else runs
  plan, redo = [], {}
  for s in steps:
    need = set()
    for lens in opts.lenses:
      why = {stale_reason(rows.get((i, s)), lens, opts) for i in runs} - {None}
      need |= {lens} if why else set()
      for r in sorted(why - {"missing"}):
        redo.setdefault((lens, r), []).append(s)
    if need:
      plan.append((s, frozenset(need)))
  return plan, redo


def pending(folder: runio.RunFolder, opts: MeasureOptions,
            runs=None) -> list[tuple[int, frozenset]]:
  """(step, lenses) that measure_run_dir(folder, opts) would compute for `runs` (default:
  all); [] when every asked row of them is there, measured with these options."""
  opts.validate()
  steps = folder.choose_steps(steps=opts.steps, every=opts.every)
  return _plan(folder.cfg, steps, read_rows(folder.file(MEASURES)), opts,
               folder.check_runs(runs))[0]


def _set_lens(row: dict, lens: str, values: dict, opts: MeasureOptions) -> None:
  """A lens's new values and options into `row`, dropping the columns it wrote under other
  options (progress/key_freq_k for k >= n_key): the ones in the namespaces (first path
  segment) of its new columns that it no longer writes. Lenses' namespaces are disjoint."""
  spaces = {k.split("/")[0] for k in values if "/" in k}
  for k in [k for k in row if "/" in k and k.split("/")[0] in spaces and k not in values]:
    del row[k]
  row.update(values)
  if opts.recorded(lens):
    row[OPTIONS_PREFIX + lens] = opts.recorded(lens)


def _measure_batch(folder, batch, rows, opts, fns) -> None:
  """Measures the steps of one batch (same lenses to do) for every run into `rows`."""
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
                if "bdm" in need else None)
    for j, (s, i) in enumerate((s, i) for s in steps for i in idx):
      row = rows.setdefault((i, s), {**runio.run_fields(i, cfg.runs[i]), "step": s})
      for lens, values in scalars.items():
        _set_lens(row, lens, {k: float(v[j]) for k, v in values.items()}, opts)
      if bdm_rows is not None:
        _set_lens(row, "bdm", bdm_rows[j], opts)


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
  plan, redo = _plan(cfg, steps, rows, opts)
  write(f"measure: {len(steps)} step(s) x {len(cfg.runs)} run(s), lenses {','.join(opts.lenses)}; "
        f"{len(steps) - len(plan)} step(s) already measured")
  for (lens, why), at in redo.items():
    write(f"measure: {why}: recomputing {lens} at {len(at)} step(s)")
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
