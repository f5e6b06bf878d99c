"""Apply the complexity lenses to the checkpoints of a run folder -> DIR/measures.csv.

  python -m experiments.measure --run_dir=runs/demo
  python -m experiments.measure --run_dir=runs/demo --lenses=spectral,fourier --every=500
  python -m experiments.measure --run_dir=runs/demo --lenses=bdm --steps=0,1000,2500

One row per run x saved step, one column per measure, and per lens the options its
values came from (options/<lens>, e.g. `levels=4 quantise=quantile`). Re-running skips
what is already there with the same options and recomputes a lens whose options
changed (--levels=8 after --levels=4 prints "levels 4 -> 8: recomputing bdm at ...").
Lenses: spectral, fourier, geometry, bdm, progress (see grokjax.measures).
"""

from __future__ import annotations

import os

# jaxlib's CPU LAPACK kernels (the SVDs of the spectral and geometry lenses) run on
# OpenBLAS; its worker threads made one 128x512 SVD take ~0.8 s instead of 5 ms on the
# 2-core CPU. Must be set before JAX loads; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from absl import app, flags

from grokjax import folder as folder_lib
from grokjax.cli import load_run_dir, parse_ints, run_main
from grokjax.measures.apply import LENSES, MeasureOptions, measure_run_dir

_RUN_DIR = flags.DEFINE_string("run_dir", None, "run folder written by experiments.train")
_LENSES = flags.DEFINE_list("lenses", list(LENSES), "lenses to apply: " + ",".join(LENSES))
_STEPS = flags.DEFINE_string("steps", None, "comma-separated saved steps (default: all)")
_EVERY = flags.DEFINE_integer("every", None, "measure the saved steps that are multiples of K")
_STEP_BATCH = flags.DEFINE_integer("step_batch", 4, "checkpoints per compiled call")
_VMAP = flags.DEFINE_integer("vmap_size", 1, "runs x checkpoints vmapped at once (1: a scan; "
                             "larger values deadlocked on jaxlib 0.10.2 CPU)")
_N_EXAMPLES = flags.DEFINE_integer("n_examples", 256, "examples for the geometry lens")
_GC = flags.DEFINE_string("gc_method", "hutchinson", "hutchinson | exact (geometric complexity)")
_PROBES = flags.DEFINE_integer("n_probes", 8, "Hutchinson probes per example")
_LEVELS = flags.DEFINE_integer("levels", 4, "quantisation levels for BDM")
_QUANTISE = flags.DEFINE_string("quantise", "quantile", "quantile | uniform")
_N_KEY = flags.DEFINE_integer("n_key", 3, "key frequencies of the progress lens")
flags.mark_flag_as_required("run_dir")


def main(argv):
  del argv
  steps = parse_ints(_STEPS.value, "steps") if _STEPS.value is not None else None
  opts = MeasureOptions(
      lenses=tuple(_LENSES.value), steps=None if steps is None else tuple(steps),
      every=_EVERY.value, step_batch=_STEP_BATCH.value, vmap_size=_VMAP.value,
      n_examples=_N_EXAMPLES.value, gc_method=_GC.value, n_probes=_PROBES.value,
      levels=_LEVELS.value, quantise=_QUANTISE.value, n_key=_N_KEY.value)
  folder = load_run_dir(_RUN_DIR.value)
  folder_lib.hold(folder.path)  # until this command ends: one writer per run folder
  path = measure_run_dir(folder, opts)
  print(f"wrote {path}")


if __name__ == "__main__":
  app.run(run_main(main))
