"""Benchmark BDM of one 16-run paper-model checkpoint: pybdm vs grokjax.measures.bdm.

  python -m experiments.bench_bdm --out=bench_bdm.json [--repeats=3] [--pybdm_runs=3]

Both BDM encodings (`bdm/2d`, `bdm/1d`) of every weight matrix of --runs runs of the
--model preset (random weights of its shapes, quantised at quartiles; the cost does
not depend on the values). Times: pybdm's own `BDM.bdm` (the reference) per run, the
median over --pybdm_runs runs, times --runs; the host scorer `complexity.bdm_measures`
likewise; `bdm.bdm_rows` on the whole batch, its first call (compilation included,
CTM tables already loaded) and the median of --repeats calls after. Writes the
numbers, the speedups and the largest relative difference from pybdm to --out.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import datetime
import json
import statistics
import time
import warnings

import jax
import numpy as np
from absl import app, flags

from grokjax import runio
from grokjax.cli import run_main
from grokjax.config import MODEL_PRESETS
from grokjax.measures import bdm, complexity
from grokjax.model import init_params

_OUT = flags.DEFINE_string("out", "bench_bdm.json", "JSON results file")
_MODEL = flags.DEFINE_string("model", "paper", "model preset")
_RUNS = flags.DEFINE_integer("runs", 16, "runs in the checkpoint (the batch)")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed JAX calls after the compiling one")
_PYBDM_RUNS = flags.DEFINE_integer("pybdm_runs", 3, "runs timed through pybdm (scaled to --runs)")


def stacked_codes(model: str, runs: int) -> dict:
  shapes = jax.eval_shape(lambda: init_params(MODEL_PRESETS[model], jax.random.key(0)))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.normal(size=(runs, *s.shape)).astype(np.float32), shapes)
  return jax.device_get(jax.jit(jax.vmap(complexity.quantise_tree))(params))


def pybdm_totals(codes: dict) -> tuple[float, float]:
  """(bdm/2d/total, bdm/1d/total) of one run through pybdm's own code path."""
  pybdm = complexity.import_pybdm()
  b2, b1 = pybdm.BDM(ndim=2), pybdm.BDM(ndim=1, nsymbols=4)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", pybdm.exceptions.BDMRuntimeWarning)  # counted by the lens
    two = sum(b2.bdm(p.astype(int)) for c in codes.values() for p in complexity.gray_planes(c))
    return two, sum(b1.bdm(c.reshape(-1).astype(int)) for c in codes.values())


def per_run(fn, codes: dict, n: int) -> tuple[float, list]:
  """Median seconds of fn over the first n runs, and its results."""
  times, outs = [], []
  for b in range(n):
    one = {k: v[b] for k, v in codes.items()}
    t = time.perf_counter()
    outs.append(fn(one))
    times.append(time.perf_counter() - t)
  return statistics.median(times), outs


def main(argv):
  del argv
  codes = stacked_codes(_MODEL.value, _RUNS.value)
  t = time.perf_counter()
  for name in (complexity.TABLE_2D, complexity.table_1d(4)):
    bdm.device_table(name)
  load = time.perf_counter() - t
  t = time.perf_counter()
  rows = bdm.bdm_rows(codes)
  first = time.perf_counter() - t
  steady = []
  for _ in range(_REPEATS.value):
    t = time.perf_counter()
    rows = bdm.bdm_rows(codes)
    steady.append(time.perf_counter() - t)
  n = min(_PYBDM_RUNS.value, _RUNS.value)
  host, _ = per_run(lambda c: complexity.bdm_measures(c, extras=False), codes, n)
  ref, totals = per_run(pybdm_totals, codes, n)
  rel = max(abs(rows[b][f"bdm/{e}/total"] - tot[i]) / tot[i]
            for b, tot in enumerate(totals) for i, e in enumerate(("2d", "1d")))
  runs, jax_s = _RUNS.value, statistics.median(steady)
  out = {"date": str(datetime.date.today()), **runio.provenance([str(d) for d in jax.devices()]),
         "model": _MODEL.value,
         "runs": runs, "blocks_per_run": {e: rows[0][f"bdm/{e}/n_blocks"] for e in ("2d", "1d")},
         "load_tables_s": load, "jax_first_call_s": first, "jax_steady_s": steady,
         "jax_median_s": jax_s, "pybdm_per_run_s": ref, "pybdm_checkpoint_s": ref * runs,
         "host_numpy_per_run_s": host, "host_numpy_checkpoint_s": host * runs,
         "speedup_vs_pybdm": ref * runs / jax_s,
         "speedup_vs_pybdm_incl_compile": ref * runs / first,
         "speedup_vs_host_numpy": host * runs / jax_s,
         "max_rel_diff_vs_pybdm_totals": rel, "load_average": os.getloadavg()}
  print(json.dumps(out, indent=1))
  with open(_OUT.value, "w") as f:
    json.dump(out, f, indent=1)


if __name__ == "__main__":
  app.run(run_main(main))
