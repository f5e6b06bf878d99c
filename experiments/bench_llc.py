"""Benchmark: the LLC of the paper model at one checkpoint, against one training step.

  python -m experiments.bench_llc                              # random-init paper model
  python -m experiments.bench_llc --run_dir=runs/quick --step=4000 --run=0
  python -m experiments.bench_llc --out=bench_llc.json

Times one checkpoint's estimate as the LLC stage runs it (`slt.apply.llc_at_checkpoints`,
SGLD, 4 chains x 200 draws, batch 512, the plans' ε, γ and burn-in), end to end from a cold
start — compilation included, as a user meets it — then again warm: first at the fixed ε
(target: under 30 s cold on a 2-core CPU), then with the automatic step size (the pilots
over `autostep.DEFAULT_GRID`, then the estimate; target: under 60 s cold). Then one jit'd
AdamW training step of the same model at the same batch size; reports the seconds per draw
per chain against the seconds per training step.
"""

from __future__ import annotations

import json
import math
import time

import jax
from absl import app, flags

from grokjax import runio
from grokjax.cli import run_main
from grokjax.config import PRESETS
from grokjax.plan import Plan
from grokjax.slt import apply, autostep, llc
from grokjax.train import init_state, run_data, train_step

_RUN_DIR = flags.DEFINE_string("run_dir", None, "run folder (default: a random-init paper model)")
_STEP = flags.DEFINE_integer("step", None, "checkpoint step (default: the last saved)")
_RUN = flags.DEFINE_integer("run", 0, "run index in the folder")
_SAMPLER = flags.DEFINE_string("sampler", "sgld", "sampler name")
_CHAINS = flags.DEFINE_integer("num_chains", 4, "chains")
_DRAWS = flags.DEFINE_integer("num_draws", 200, "draws per chain")
_BATCH = flags.DEFINE_integer("batch_size", 512, "minibatch size")
_TRAIN_STEPS = flags.DEFINE_integer("train_steps", 20, "training steps timed (after warm-up)")
_OUT = flags.DEFINE_string("out", None, "write the numbers to this JSON file")


def _setup():
  if _RUN_DIR.value:
    folder = runio.RunFolder.open(_RUN_DIR.value)
    step = _STEP.value if _STEP.value is not None else folder.steps[-1]
    params = jax.tree.map(lambda a: a[0, 0], folder.params([step], [_RUN.value]))
    return folder.cfg, _RUN.value, params, step
  cfg = PRESETS["paper"]
  spec = cfg.runs[0]
  return cfg, 0, init_state(cfg, jax.random.key(0), spec.lr, spec.weight_decay).params, 0


def _train_step_seconds(cfg, index, params) -> float:
  spec = cfg.runs[index]
  state = init_state(cfg, jax.random.key(0), spec.lr, spec.weight_decay).replace(params=params)
  run = run_data(cfg, spec)
  step = jax.jit(lambda s: train_step(cfg, s, run))
  state = jax.block_until_ready(step(state))
  t0 = time.perf_counter()
  for _ in range(_TRAIN_STEPS.value):
    state = step(state)
  jax.block_until_ready(state)
  return (time.perf_counter() - t0) / _TRAIN_STEPS.value


def _timed(fn) -> tuple[float, float, dict]:
  """(cold seconds, warm seconds, the warm call's result) of fn(key)."""
  t0 = time.perf_counter()
  jax.block_until_ready(fn(jax.random.key(0)))
  cold = time.perf_counter() - t0
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(jax.random.key(1)))
  return cold, time.perf_counter() - t0, out


def main(argv):
  del argv
  cfg, index, params, step = _setup()
  data = apply.train_data(cfg, index)
  loss_fn = apply.make_loss_fn(cfg)
  plan = Plan()
  spec = llc.make_spec(sampler=_SAMPLER.value, num_chains=_CHAINS.value,
                       num_draws=_DRAWS.value, num_burnin=plan.llc_burnin,
                       batch_size=_BATCH.value, n=int(data[1].shape[0]),
                       eval_chunk=cfg.eval_chunk)
  nbeta = llc.resolve_nbeta(None, num_examples=int(data[1].shape[0]), batch_size=_BATCH.value)
  stacked = jax.tree.map(lambda a: a[None], params)
  kw = dict(spec=spec, nbeta=nbeta, localization=plan.llc_localization,
            chance_loss=math.log(cfg.p))
  fixed = lambda key: apply.llc_at_checkpoints(loss_fn, stacked, data, key=key,
                                               step_size=plan.llc_step_size, **kw)
  auto = lambda key: apply.llc_at_checkpoints(loss_fn, stacked, data, key=key, step_size=None,
                                              step_grid=autostep.DEFAULT_GRID, **kw)
  cold, warm, out = _timed(fixed)
  auto_cold, auto_warm, auto_out = _timed(auto)
  per_draw = warm / (_CHAINS.value * _DRAWS.value)
  train = _train_step_seconds(cfg, index, params)
  result = {
      "model": cfg.model, "checkpoint_step": step, "sampler": _SAMPLER.value,
      "num_chains": _CHAINS.value, "num_draws": _DRAWS.value, "batch_size": _BATCH.value,
      "n_train": int(data[1].shape[0]), "step_size": plan.llc_step_size,
      "localization": plan.llc_localization, "num_burnin": plan.llc_burnin,
      "cold_seconds": cold, "warm_seconds": warm, "compile_seconds_approx": cold - warm,
      "seconds_per_chain_draw": per_draw, "seconds_per_train_step": train,
      "draw_over_train_step": per_draw / train, "llc_mean": float(out["llc/mean"][0]),
      "diverged": int(out["diverged/count"][0]),
      "auto_cold_seconds": auto_cold, "auto_warm_seconds": auto_warm,
      "auto_step_size": float(auto_out["autostep/step_size"][0]),
      "auto_ok": bool(auto_out["autostep/ok"][0]), "auto_llc_mean": float(auto_out["llc/mean"][0]),
  }
  for k, v in result.items():
    print(f"{k:>24}: {v:.4g}" if isinstance(v, float) else f"{k:>24}: {v}")
  print(f"{'target (cold < 30 s)':>24}: {'met' if cold < 30 else 'NOT met'}")
  print(f"{'target (auto cold < 60 s)':>24}: {'met' if auto_cold < 60 else 'NOT met'}")
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      json.dump({**result, **runio.provenance([str(d) for d in jax.devices()])}, f, indent=2)


if __name__ == "__main__":
  app.run(run_main(main))
