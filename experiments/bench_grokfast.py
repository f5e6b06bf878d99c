"""Grokking step with and without Grokfast-EMA: one sweep, each op x seed x {off, on}.

  python -m experiments.bench_grokfast --out=runs/bench_grokfast.json
  python -m experiments.bench_grokfast --ops=mul --steps=800 --out=runs/grokfast_mul.json
  python -m experiments.bench_grokfast --lambs=2 --out=runs/grokfast_only.json  # one arm

Defaults are the paper's settings (paper model, lr 1e-3, weight decay 1, train fraction
0.5, p = 97, batch 512) and Grokfast's EMA defaults (alpha 0.98, lamb 2.0); lamb 0 is
plain AdamW (`--lambs` picks the arms; the runs of one seed share their initial weights and
batches whatever the arm, so an arm can be set against a sweep trained elsewhere with the same
settings). The grokking step is the first evaluated step with test accuracy >= 0.99.
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
_LAMBS = flags.DEFINE_list("lambs", ["0", "2"], "Grokfast amplifications, one arm each (0: "
                           "plain AdamW); without 0 there is no in-program speed-up")
_OUT = flags.DEFINE_string("out", None, "JSON results file")


def main(argv):
  del argv
  if _OUT.value is None:
    raise ConfigError("--out is required (the JSON file to write)")
  try:
    lambs = tuple(float(v) for v in _LAMBS.value)
  except ValueError as e:
    raise ConfigError(f"--lambs: {e}") from e
  cfg = dataclasses.replace(
      PRESETS["paper"], ops=tuple(_OPS.value), seeds=tuple(parse_ints(_SEEDS.value, "seeds")),
      weight_decays=(_WD.value,), lrs=(_LR.value,), train_fracs=(_FRAC.value,), p=_P.value,
      grokfast_alphas=(_ALPHA.value,), grokfast_lambs=lambs, steps=_STEPS.value,
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
    per_op[op] = {f"grok_steps_lamb_{lamb:g}": steps(lamb) for lamb in lambs}
    off = steps(0.0) if 0.0 in lambs else None
    for lamb in (l for l in lambs if l and off):
      on = steps(lamb)
      ratio = [a / b for a, b in zip(off, on)] if None not in off + on else None
      per_op[op][f"speedup_lamb_{lamb:g}"] = statistics.median(ratio) if ratio else None
  record = {"config": cfg.to_dict(), "runs": runs, "per_op": per_op, "wall_s": round(wall, 1),
            **runio.provenance([str(d) for d in jax.devices()])}
  pathlib.Path(_OUT.value).parent.mkdir(parents=True, exist_ok=True)
  pathlib.Path(_OUT.value).write_text(json.dumps(record, indent=2) + "\n")
  for op, v in per_op.items():
    print(f"{op}: " + ", ".join(f"{k} {x}" for k, x in v.items()))

if __name__ == "__main__":
  app.run(run_main(main))
