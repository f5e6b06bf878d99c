"""Train a grokking sweep as one compiled program.

  python -m experiments.train --preset=demo --out=runs/demo
  python -m experiments.train --ops=add,sub,mul,div --weight_decays=0,1 --seeds=42,101 \
      --steps=100000 --out=runs/paper
  python -m experiments.train --out=runs/demo --preset=demo --resume
  python -m experiments.train --preset=paper --out=runs/paper --dry_run
  python -m experiments.train --preset=demo --weight_decays=1 --grokfast_lambs=0,2 \
      --out=runs/grokfast
  python -m experiments.train --preset=gpt2-medium --out=runs/gpt2-medium   # a GPU job

Explicit flags override the preset's values. --cpu_devices=N splits a CPU-only
host into N XLA devices and shards the runs over them. Compiled programs are kept in
--compilation_cache (default: a per-user folder; --compilation_cache= turns it off).

Several processes (a TPU pod slice: the same command on every worker; GPU hosts or
one machine: one command per process):

  python -m experiments.train --preset=tiny --out=/shared/runs/x --distributed \
      --coordinator=10.0.0.1:8476 --num_processes=2 --process_id=K
"""

from __future__ import annotations

import os

# Before JAX loads: OpenBLAS threads slow the SVDs of each evaluation ~100x on 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import app, flags  # noqa: E402

from grokjax import sweep
from grokjax.cli import (check_positive, default_compilation_cache, join_job, run_main,
                         sweep_config_from_flags, use_compilation_cache, use_cpu_devices)
from grokjax.errors import ConfigError

_PRESET = flags.DEFINE_string("preset", "paper",
                               "paper | demo | cpu-quick | tiny | gpt2-medium | gpt2-large")
flags.DEFINE_list("ops", None, "operations, e.g. add,sub,mul,div")
flags.DEFINE_list("seeds", None, "integer seeds")
flags.DEFINE_list("weight_decays", None, "AdamW weight decays")
flags.DEFINE_list("lrs", None, "learning rates")
flags.DEFINE_list("train_fracs", None, "train fractions in (0, 1)")
flags.DEFINE_string("grokfast_filter", None, "ema | ma: the Grokfast filter of runs with lamb > 0")
flags.DEFINE_list("grokfast_alphas", None, "Grokfast EMA momenta in [0, 1), e.g. 0.98")
flags.DEFINE_list("grokfast_lambs", None, "Grokfast amplifications >= 0 (0: plain AdamW), e.g. 0,2")
flags.DEFINE_list("grokfast_windows", None, "Grokfast MA windows >= 1 (buffer: the largest)")
flags.DEFINE_list("weight_norms", None, "target total L2 norms of the weights (0: off)")
flags.DEFINE_integer("p", None, "modulus")
flags.DEFINE_integer("steps", None, "training steps")
flags.DEFINE_integer("batch_size", None, "minibatch size")
flags.DEFINE_float("lr", None, "learning rate (same as --lrs with one value)")
flags.DEFINE_float("train_frac", None, "train fraction (same as --train_fracs with one value)")
flags.DEFINE_string("model", None, "paper | tiny | gpt2-medium | gpt2-large")
flags.DEFINE_string("activation", None, "gelu | gelu_tanh | relu")
flags.DEFINE_string("dtype", None, "float32 | bfloat16 (compute dtype)")
flags.DEFINE_float("grad_clip", None, "global-norm gradient clipping, 0 disables")
flags.DEFINE_integer("eval_every", None, "evaluate every K steps")
flags.DEFINE_integer("ckpt_every", None, "checkpoint params every K steps (0: only the first "
                     "and last)")
flags.DEFINE_list("ckpt_steps", None, "explicit checkpoint steps, e.g. 100,1000,10000,100000 "
                  "(replace --ckpt_every; the last step is always saved)")
flags.DEFINE_integer("ckpt_log_points", None, "checkpoints log-spaced over [1, steps] (0: none)")
flags.DEFINE_float("ckpt_trigger_acc", None, "also checkpoint at an evaluation where a run's "
                   "train or test accuracy moved by more than this (> 0) since the last save (unset: off)")
flags.DEFINE_float("ckpt_trigger_loss", None, "the same for ln(train or test loss) (> 0; unset: "
                   "off)")
flags.DEFINE_bool("ckpt_trigger_off", False, "no triggered checkpoints (turns the preset's "
                  "--ckpt_trigger_acc / --ckpt_trigger_loss off)")
flags.DEFINE_float("max_checkpoint_gb", None, "disk budget of the checkpoints in GB; triggers "
                   "stop before the scheduled steps would not fit (0: none)")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "print runs, checkpoints, disk and estimated "
                             "times from a short calibration; write nothing")
_OUT = flags.DEFINE_string("out", None, "run folder")
_RESUME = flags.DEFINE_bool("resume", False, "continue the sweep in --out")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "delete --out first")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 1,
                                    "XLA host devices to split a CPU-only machine into")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "join a job of several processes "
                                  "(jax.distributed.initialize)")
_COORDINATOR = flags.DEFINE_string("coordinator", None, "host:port of process 0 (default: "
                                   "detected from the cluster, e.g. a TPU pod slice)")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "processes in the job (with "
                                      "--coordinator)")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "this process's index (with "
                                   "--coordinator)")
_DIST_TIMEOUT = flags.DEFINE_integer("dist_timeout", 300, "seconds to wait for every "
                                     "process to join")
_HEARTBEAT = flags.DEFINE_integer("heartbeat_timeout", 100, "seconds of silence after which "
                                  "JAX declares a process dead")
_CACHE = flags.DEFINE_string("compilation_cache", default_compilation_cache(),
                             "JAX persistent compilation cache folder ('' turns it off)")


def main(argv):
  del argv
  check_positive(dist_timeout=_DIST_TIMEOUT.value, heartbeat_timeout=_HEARTBEAT.value)
  use_cpu_devices(_CPU_DEVICES.value)
  cfg = sweep_config_from_flags(flags.FLAGS, _PRESET.value)
  if _OUT.value is None:
    raise ConfigError("--out is required (the run folder to write)")
  use_compilation_cache(_CACHE.value)
  if _DRY_RUN.value:
    from grokjax import dryrun

    dryrun.dry_run(cfg, _OUT.value, resume=_RESUME.value, overwrite=_OVERWRITE.value)
    return
  if _DISTRIBUTED.value:
    join_job(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
             timeout_s=_DIST_TIMEOUT.value, heartbeat_s=_HEARTBEAT.value)
    from grokjax import multihost

    multihost.check_same("config", {**cfg.to_dict(), "out": _OUT.value,
                                    "resume": _RESUME.value, "overwrite": _OVERWRITE.value})
  sweep.train_sweep(cfg, _OUT.value, resume=_RESUME.value, overwrite=_OVERWRITE.value)


if __name__ == "__main__":
  app.run(run_main(main))
