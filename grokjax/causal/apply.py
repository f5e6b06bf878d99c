"""The causal lens over training: patching and ablation at checkpoints of a sweep.

For each chosen step the stacked parameters of the chosen runs are loaded once; each
run gets its own prompt pairs (sampled once from its op and split, so the same pairs
are used at every step) and its own ablation examples. Where the runs fit in memory
together (`vmap_runs`), patching and ablation run as one `vmap` over runs with the
per-run batch cut so that a forward pass still holds at most `max_batch` prompts;
otherwise the runs go one at a time. The result is tidy rows for causal.csv (one per
run x step x head) and causal_ablation.csv (one per run x step x order x count).

>>> # folder = runio.RunFolder.open("runs/demo")
>>> # patch_rows, ablation_rows = causal_over_training(folder, folder.log_spaced(4))
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, Sequence

import jax
import numpy as np

from grokjax import runio
from grokjax.causal import ablation, patching, worlds
from grokjax.causal.pairs import Pairs, sample_pairs, subset_mask
from grokjax.config import SweepConfig
from grokjax.errors import ConfigError
from grokjax.model import init_params
from grokjax.train import run_data

VMAP_MAX_PARAMS = 50_000_000  # total parameters of all runs vmapped together


@dataclasses.dataclass
class CausalOptions:
  n_pairs: int = 256
  pair_source: str = "all"  # 'all' | 'train' | 'test'
  positions: str = "answer"  # 'answer' | 'all'
  heads: tuple | None = None  # (layer, head) pairs to patch; None: all
  ablation: str = "zero"  # 'zero' | 'mean' | 'none'
  n_random: int = 5
  ablation_source: str = "test"  # examples the ablated accuracy is measured on
  ablation_examples: int = 1024  # at most this many of them (a fixed random subset)
  points: int | None = None  # counts of ablated heads on each curve; None: every count
  seed: int = 0
  max_batch: int | None = None  # prompts per pass over all runs; None: worlds.default_max_batch
  vmap_runs: bool | None = None  # None: when the runs' parameters total <= VMAP_MAX_PARAMS


def _inputs(cfg: SweepConfig, runs: list[int], opts: CausalOptions):
  """Per run: prompt pairs and ablation examples, stacked over runs (numpy)."""
  pairs, tables = [], []
  for r in runs:
    spec, key = cfg.runs[r], jax.random.fold_in(jax.random.key(opts.seed), r)
    data = run_data(cfg, spec)
    pairs.append(sample_pairs(spec.op, cfg.p, opts.n_pairs, key=jax.random.fold_in(key, 0),
                              is_train=data.is_train, source=opts.pair_source))
    idx = np.flatnonzero(subset_mask(cfg.p, opts.ablation_source, data.is_train))
    rng = np.random.default_rng(np.asarray(jax.random.key_data(jax.random.fold_in(key, 1))))
    idx = rng.permutation(idx)
    tables.append((np.asarray(data.inputs), np.asarray(data.targets), idx))
  m = min(opts.ablation_examples, min(len(idx) for *_, idx in tables))
  inputs = [x[idx[:m]] for x, _, idx in tables]
  targets = [y[idx[:m]] for _, y, idx in tables]
  stacked = Pairs(*(np.stack(a) for a in zip(*pairs)))
  return stacked, np.stack(inputs), np.stack(targets)


def _patch_rows(cfg, runs, step, effects, heads) -> list[dict]:
  rows = []
  for k, r in enumerate(runs):
    for l, h in heads:
      row = {**runio.run_fields(r, cfg.runs[r]), "step": step, "layer": l, "head": h}
      for name in patching.METRICS:
        row[name] = float(effects[f"{name}/mean"][k, l, h])
        row[f"{name}_se"] = float(effects[f"{name}/se"][k, l, h])
      for name in ("logit_diff_clean", "logit_diff_corrupt", "prob_clean"):
        row[name] = float(effects[f"baseline/{name}"][k])
      rows.append(row)
  return rows


def _ablation_rows(cfg, runs, step, curves, mode) -> list[dict]:
  rows = []
  ns = np.asarray(curves["n_ablated"])[0]
  for k, r in enumerate(runs):
    orders = [("importance", 0, curves["importance/accuracy"][k], curves["importance/loss"][k])]
    orders += [("random", j, curves["random/accuracy"][k, j], curves["random/loss"][k, j])
               for j in range(curves["random/accuracy"].shape[1])]
    for order, j, acc, loss in orders:
      for i, n in enumerate(ns):
        rows.append({**runio.run_fields(r, cfg.runs[r]), "step": step, "ablation": mode,
                     "order": order, "order_index": j, "n_ablated": int(n),
                     "accuracy": float(acc[i]), "loss": float(loss[i])})
  return rows


def _per_run(fn_one, fn_many, vmapped: bool, n_runs: int, *args):
  """fn over stacked args: one vmapped call, or a loop over runs restacked."""
  if vmapped:
    return jax.tree.map(np.asarray, fn_many(*args))
  outs = [fn_one(*jax.tree.map(lambda a: a[k], args)) for k in range(n_runs)]
  return jax.tree.map(lambda *a: np.stack([np.asarray(x) for x in a]), *outs)


def causal_over_training(folder: runio.RunFolder, steps: Sequence[int],
                         runs: Sequence[int] | None = None, opts: CausalOptions = CausalOptions(),
                         log: Callable[[str], None] = print) -> tuple[list[dict], list[dict]]:
  """(causal.csv rows, causal_ablation.csv rows) for the given steps and run indices."""
  cfg = folder.cfg
  steps, runs = folder.choose_steps(steps=steps), folder.check_runs(runs)
  mcfg = cfg.model_config
  heads = worlds.check_heads(mcfg, opts.heads)
  if opts.ablation not in ("none", *ablation.MODES):
    raise ConfigError(f"unknown ablation {opts.ablation!r}; valid: none, zero, mean")
  pairs, inputs, targets = _inputs(cfg, runs, opts)
  shapes = jax.eval_shape(lambda: init_params(mcfg, jax.random.key(0)))
  n_params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(shapes))
  vmapped = (opts.vmap_runs if opts.vmap_runs is not None
             else n_params * len(runs) <= VMAP_MAX_PARAMS)
  max_batch = opts.max_batch or worlds.default_max_batch(mcfg)
  per_pass = max(1, max_batch // len(runs)) if vmapped else max_batch
  pfn = {v: patching.patching_fn(mcfg, heads=opts.heads, positions=opts.positions,
                                 max_batch=per_pass, over_runs=v) for v in (False, True)}
  patch_rows, ablation_rows = [], []
  for step in steps:
    t0 = time.perf_counter()
    params = jax.tree.map(lambda a: a[0], folder.params([step], runs))
    effects = _per_run(pfn[False], pfn[True], vmapped, len(runs), params, pairs)
    patch_rows += _patch_rows(cfg, runs, step, effects, heads)
    if opts.ablation != "none":
      cfn = {v: ablation.curves_fn(mcfg, n_random=opts.n_random, mode=opts.ablation,
                                   points=opts.points, max_batch=per_pass, over_runs=v)
             for v in (False, True)}
      keys = np.stack([np.asarray(jax.random.key_data(jax.random.fold_in(
          jax.random.key(opts.seed + 1), r))) for r in runs])
      importance = np.nan_to_num(effects["logit_diff/mean"], nan=0.0)
      curves = _per_run(cfn[False], cfn[True], vmapped, len(runs), params, inputs, targets,
                        importance, keys)
      ablation_rows += _ablation_rows(cfg, runs, step, curves, opts.ablation)
    log(f"causal: step {step}: {len(runs)} runs in {time.perf_counter() - t0:.1f}s"
        f"{' (vmapped)' if vmapped else ''}")
  return patch_rows, ablation_rows


def parse_heads(values) -> tuple | None:
  if values is None:
    return None
  try:
    return tuple(tuple(int(v) for v in item.split(".")) for item in values)
  except ValueError as e:
    raise ConfigError(f"--heads takes layer.head items, e.g. 0.1,1.3; got {values}") from e
