"""Grokking step with and without Grokfast-EMA: one sweep, each op x seed x {off, on}.

  python -m experiments.bench_grokfast --out=runs/bench_grokfast.json
  python -m experiments.bench_grokfast --ops=mul --steps=800 --out=runs/grokfast_mul.json

Defaults are the paper's settings (paper model, lr 1e-3, weight decay 1, train fraction
0.5, p = 97, batch 512) and Grokfast's EMA defaults (alpha 0.98, lamb 2.0); lamb 0 is
plain AdamW. The grokking step is the first evaluated step with test accuracy >= 0.99.
Writes a JSON file with the config, every run's steps and the per-op speed-ups.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dataclasses  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
from absl import app, flags  # noqa: E402

from grokjax import runio, sweep  # noqa: E402
from grokjax.cli import parse_ints, run_main  # noqa: E402
from grokjax.config import PRESETS  # noqa: E402
from grokjax.errors import ConfigError  # noqa: E402

_OPS = flags.DEFINE_list("ops", ["add", "sub", "mul", "div"], "operations")
_SEEDS = flags.DEFINE_string("seeds", "42,101", "seeds")
_STEPS = flags.DEFINE_integer("steps", 20_000, "training steps")
_EVAL = flags.DEFINE_integer("eval_every", 50, "evaluation interval (the steps' resolution)")
_MODEL = flags.DEFINE_string("model", "paper", "model preset")
_P = flags.DEFINE_integer("p", 97, "modulus")
_LR = flags.DEFINE_float("lr", 1e-3, "learning rate")
_WD = flags.DEFINE_float("weight_decay", 1.0, "AdamW weight decay")
_FRAC = flags.DEFINE_float("train_frac", 0.5, "train fraction")
_BATCH = flags.DEFINE_integer("batch_size", 512, "minibatch size")
_ALPHA = flags.DEFINE_float("alpha", 0.98, "Grokfast EMA momentum")
_LAMB = flags.DEFINE_float("lamb", 2.0, "Grokfast amplification")
_OUT = flags.DEFINE_string("out", None, "JSON results file")


def main(argv):
  del argv
  if _OUT.value is None:
    raise ConfigError("--out is required (the JSON file to write)")
  cfg = dataclasses.replace(
      PRESETS["paper"], ops=tuple(_OPS.value), seeds=tuple(parse_ints(_SEEDS.value, "seeds")),
      weight_decays=(_WD.value,), lrs=(_LR.value,), train_fracs=(_FRAC.value,), p=_P.value,
      grokfast_alphas=(_ALPHA.value,), grokfast_lambs=(0.0, _LAMB.value), steps=_STEPS.value,
      eval_every=_EVAL.value, ckpt_every=_STEPS.value, batch_size=_BATCH.value,
      model=_MODEL.value)
  t0 = time.time()
  with tempfile.TemporaryDirectory() as tmp:
    summary = sweep.train_sweep(cfg, pathlib.Path(tmp) / "run")
  wall = time.time() - t0
  runs = [{k: r[k] for k in ("op", "seed", "grokfast_lamb", "train_acc_099_step",
                             "test_acc_099_step", "final_test_acc")} for r in summary]
  for r in runs:
    r["grok_step"] = r.pop("test_acc_099_step") or None
    r["memorisation_step"] = r.pop("train_acc_099_step") or None
  per_op = {}
  for op in cfg.ops:
    def steps(lamb):
      return [r["grok_step"] for r in runs if r["op"] == op and r["grokfast_lamb"] == lamb]
    off, on = steps(0.0), steps(_LAMB.value)
    ratio = ([a / b for a, b in zip(off, on)] if None not in off + on else None)
    per_op[op] = {"grok_steps_adamw": off, "grok_steps_grokfast": on,
                  "speedup_per_seed": ratio,
                  "median_speedup": statistics.median(ratio) if ratio else None}
  record = {"config": cfg.to_dict(), "runs": runs, "per_op": per_op, "wall_s": round(wall, 1),
            **runio.provenance([str(d) for d in jax.devices()])}
  pathlib.Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(_OUT.value).write_text(json.dumps(record, indent=2) + "\n")
  for op, v in per_op.items():
    print(f"{op}: grok step AdamW {v['grok_steps_adamw']} vs Grokfast-EMA "
          f"{v['grok_steps_grokfast']} (speed-up {v['median_speedup']})")


if __name__ == "__main__":
  app.run(run_main(main))
