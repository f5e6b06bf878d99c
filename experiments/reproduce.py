"""Reproduce the paper end to end: train, every lens, the lead-time analysis, the report.

  python -m experiments.reproduce --preset=demo --out=runs/demo          # < 10 min, 2-core CPU
  python -m experiments.reproduce --preset=cpu-quick --out=runs/quick    # < 45 min, 2-core CPU
  python -m experiments.reproduce --preset=paper --out=runs/paper        # GPU / TPU
  python -m experiments.reproduce --preset=paper --out=runs/paper --dry_run  # estimates
  python -m experiments.reproduce --preset=paper --ops=sub --seeds=42 --weight_decays=1 \
      --out=runs/paper-sub   # one run of the paper's protocol, ~1 h of training on 2 CPU cores

Stages (grokjax.pipeline), each skipped when its output in --out is already complete
(so re-running resumes): train, measures (-> measures.csv), causal (-> causal.csv,
causal_ablation.csv), llc (-> llc.csv), invariance (-> llc_invariance.csv), surrogate
(-> surrogate/), snapshots (-> snapshots.npz), hidden (-> hidden.npz), and the report
(DIR/report/report.md, report.html, figures/, tables/; the lens plan is recorded in
DIR/plan.json).
--skip=llc,invariance leaves stages out; the report says which.
"""

from __future__ import annotations

import os

# Before JAX loads: OpenBLAS threads slow the SVDs of each evaluation ~100x on 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import app, flags  # noqa: E402

from grokjax.cli import (check_non_negative, cpu_device_count, run_main, sweep_config_from_flags,
                         use_cpu_devices)
from grokjax.config import PRESETS
from grokjax.errors import ConfigError
from grokjax.pipeline import STAGES, reproduce
from grokjax.plan import PLANS

__all__ = ["PLANS", "PRESETS", "STAGES", "cpu_device_count", "reproduce"]

_PRESET = flags.DEFINE_enum("preset", "demo", list(PLANS), "sweep and lens plan")
_OUT = flags.DEFINE_string("out", None, "run folder (created, or resumed when it holds this sweep)")
_SKIP = flags.DEFINE_list("skip", [], "stages to leave out: " + ",".join(STAGES[1:-1]))
# Default 1: with the runs split over 2 host devices, jaxlib 0.10.2 deadlocked in the
# sweep's evaluation (vmapped SVDs of spectral_summary, jax::ParallelBatchMap waiting on a
# thread pool whose threads both devices hold), twice at step ~2000 of the demo; one
# device trained the demo as fast (4.0 vs 4.1 steps/s: evaluation dominates).
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 1, "XLA host devices to split a CPU-only "
                                    "machine into (0: the largest divisor of the run count "
                                    "<= CPU cores)")
# a sub-grid of the preset (e.g. one run of the paper's protocol on a CPU) keeps its schedule
# and lens plan; the flags' values are checked as train's are (grokjax.cli)
flags.DEFINE_list("ops", None, "override the preset's operations, e.g. sub")
flags.DEFINE_list("seeds", None, "override the preset's seeds, e.g. 42")
flags.DEFINE_list("weight_decays", None, "override the preset's weight decays, e.g. 1")
flags.DEFINE_list("lrs", None, "override the preset's learning rates")
flags.DEFINE_integer("steps", None, "override the preset's training steps")
flags.DEFINE_integer("eval_every", None, "override the preset's evaluation interval")
flags.DEFINE_integer("ckpt_every", None, "override the preset's checkpoint interval (denser "
                     "checkpoints time the measures' onsets more finely)")
flags.DEFINE_float("max_checkpoint_gb", None, "override the preset's checkpoint disk budget in "
                   "GB (0: none)")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "print runs, checkpoints, disk and estimated "
                             "stage times from a short calibration; write nothing")


def main(argv):
  del argv
  from absl import logging

  logging.set_verbosity(logging.ERROR)  # orbax warns on every read-only checkpoint manager
  if _OUT.value is None:
    raise ConfigError("--out is required (the run folder to write or resume)")
  cfg = sweep_config_from_flags(flags.FLAGS, _PRESET.value)
  check_non_negative(cpu_devices=_CPU_DEVICES.value)  # 0: chosen from the run count
  use_cpu_devices(_CPU_DEVICES.value or cpu_device_count(len(cfg.runs)))  # before JAX starts
  if _DRY_RUN.value:
    from grokjax import dryrun

    dryrun.dry_run(cfg, _OUT.value, plan=PLANS[_PRESET.value], reuse=True)
    return
  reproduce(cfg, _OUT.value, PLANS[_PRESET.value], skip=tuple(_SKIP.value),
            write=lambda s: print(s, flush=True))


if __name__ == "__main__":
  app.run(run_main(main))
