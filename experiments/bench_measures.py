"""Benchmark the lenses: one checkpoint of a 16-run paper-model sweep, and BDM of one run.

  python -m experiments.bench_measures                      # updates BUILD_NOTES.md
  python -m experiments.bench_measures --notes=runs/bench.md --repeats=2

Times each jittable lens (compiled once, then the median of --repeats calls) over the
16 runs of the paper grid (4 ops x 2 weight decays x 2 seeds, p = 97; one compiled
function per op, as `experiments.measure` runs them), and BDM (both encodings, then
the block-gzip and compression extras) of one run's whole model, against the targets: jittable lenses < 2 s per checkpoint of 16 runs, BDM < 3 s per
run-checkpoint. The table replaces the section between the bench_measures markers
of --notes (appended if absent). Parameters are random (initialisation); the cost of
every lens does not depend on their values.
"""

from __future__ import annotations

import os

# jaxlib's CPU LAPACK kernels (the SVDs of the spectral and geometry lenses) run on
# OpenBLAS; its worker threads made one 128x512 SVD take ~0.8 s instead of 5 ms on the
# 2-core CPU. Must be set before JAX loads; an explicit setting wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import dataclasses
import datetime
import pathlib
import re
import statistics
import time
import warnings

import jax
import numpy as np
from absl import app, flags

from grokjax import runio, train
from grokjax.cli import run_main
from grokjax.config import SweepConfig
from grokjax.measures import apply, complexity
from grokjax.model import init_params

_NOTES = flags.DEFINE_string("notes", "BUILD_NOTES.md", "markdown file whose section to replace")
_REPEATS = flags.DEFINE_integer("repeats", 3, "timed calls after the compiling one")
_MODEL = flags.DEFINE_string("model", "paper", "model preset")
_N_EXAMPLES = flags.DEFINE_integer("n_examples", 256, "examples for the geometry lens")

START, END = "<!-- bench_measures:start -->", "<!-- bench_measures:end -->"


def timed(fn, repeats: int) -> tuple[float, float]:
  """(first call incl. compilation, median of the next `repeats`) in seconds."""
  t = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t
  runs = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    runs.append(time.perf_counter() - t)
  return first, statistics.median(runs)


def sweep_params(cfg: SweepConfig) -> dict[str, tuple[dict, np.ndarray]]:
  """(stacked initial parameters, train masks) of each op's runs."""
  init = jax.jit(jax.vmap(lambda k: init_params(cfg.model_config, k)))
  out = {}
  for op in cfg.ops:
    specs = [s for s in cfg.runs if s.op == op]
    masks = np.stack([np.asarray(train.run_data(cfg, s).is_train) for s in specs])
    out[op] = (jax.device_get(init(jax.random.split(jax.random.key(len(out)), len(specs)))),
               masks)
  return out


def bench_lenses(cfg, params, repeats, n_examples) -> list[tuple[str, float, float]]:
  rows = []
  cases = [("spectral", ("spectral",), {}), ("fourier (with Occam gate)", ("fourier",), {}),
           ("geometry, Hutchinson GC (8 probes)", ("geometry",), {}),
           ("geometry, exact GC", ("geometry",), {"gc_method": "exact"}),
           ("progress (restricted / excluded loss)", ("progress",), {}),
           ("quantisation for BDM", ("bdm",), {}),
           ("all jittable (measure's defaults)", apply.LENSES, {})]
  for name, lenses, extra in cases:
    opts = apply.MeasureOptions(lenses=lenses, n_examples=n_examples, **extra)
    fns = {op: apply.lens_fn(cfg, op, frozenset(lenses), opts) for op in cfg.ops}
    first, steady = timed(lambda: [fns[op](*params[op]) for op in cfg.ops], repeats)
    rows.append((name, first, steady))
    print(f"{name}: first {first:.2f} s, then {steady:.3f} s per checkpoint", flush=True)
  return rows


def bench_bdm(params, repeats) -> list[tuple[str, float, float]]:
  codes = jax.device_get(jax.jit(complexity.quantise_tree)(jax.tree.map(lambda a: a[0], params)))
  t = time.perf_counter()
  complexity.ctm_table(complexity.TABLE_2D), complexity.ctm_table(complexity.table_1d(4))
  rows = [("load CTM tables (once per process)", time.perf_counter() - t, float("nan"))]
  for name, kw in [("BDM 2-D (Gray bit-planes, CTM-B2-D4x4)",
                    dict(encodings=("2d",), extras=False)),
                   ("BDM 1-D (CTM-B4-D12)", dict(encodings=("1d",), extras=False)),
                   ("BDM both encodings", dict(extras=False)),
                   ("block-gzip + zlib + lzma", dict(encodings=(), extras=True)),
                   ("BDM both + extras", dict())]:
    first, steady = timed(lambda: complexity.bdm_measures(codes, **kw), repeats)
    rows.append((name, first, steady))
    print(f"{name}: {steady:.3f} s per run-checkpoint", flush=True)
  first, steady = timed(lambda: pybdm_direct(codes), repeats)
  rows.append(("reference: pybdm's own BDM.bdm, both encodings", first, steady))
  return rows


def pybdm_direct(codes: dict) -> float:
  """The same two totals through pybdm's own (per-block Python) code path."""
  pybdm = complexity.import_pybdm()
  b2, b1 = pybdm.BDM(ndim=2), pybdm.BDM(ndim=1, nsymbols=4)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", pybdm.exceptions.BDMRuntimeWarning)  # counted elsewhere
    two = sum(b2.bdm(p.astype(int)) for c in codes.values() for p in complexity.gray_planes(c))
    return two + sum(b1.bdm(c.reshape(-1).astype(int)) for c in codes.values())


def table(cfg, lens_rows, bdm_rows) -> str:
  n, prov = len(cfg.runs), runio.provenance([str(d) for d in jax.devices()])
  lines = [
      f"Measured {datetime.date.today()} on {prov['machine']}, {jax.devices()[0].platform} "
      f"({jax.device_count()} device(s)), model `{cfg.model}`, p = {cfg.p}, {n} runs; "
      f"grokjax {prov['git_commit']}, jax {prov['versions']['jax']}.",
      "", f"| jittable lens, one checkpoint of {n} runs | first call (compile) s | then s "
      "| target |", "|---|---|---|---|"]
  lines += [f"| {a} | {b:.1f} | {c:.3f} | {'< 2 s' if a.startswith('all') else ''} |"
            for a, b, c in lens_rows]
  lines += ["", "| BDM, one run-checkpoint (host) | first call s | then s | target |",
            "|---|---|---|---|"]
  lines += [f"| {a} | {b:.3f} | {c:.3f} | {'< 3 s' if a == 'BDM both encodings' else ''} |"
            for a, b, c in bdm_rows]
  return "\n".join(lines)


def write_section(path: pathlib.Path, body: str) -> None:
  text = path.read_text() if path.is_file() else ""
  section = f"{START}\n{body}\n{END}"
  if START in text and END in text:
    text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: section, text, flags=re.S)
  else:
    text = text + ("\n" if text and not text.endswith("\n") else "") + "\n" + section + "\n"
  path.write_text(text)


def main(argv):
  del argv
  cfg = dataclasses.replace(SweepConfig(), model=_MODEL.value)
  params = sweep_params(cfg)
  lens_rows = bench_lenses(cfg, params, _REPEATS.value, _N_EXAMPLES.value)
  bdm_rows = bench_bdm(params[cfg.ops[0]][0], _REPEATS.value)
  body = table(cfg, lens_rows, bdm_rows)
  print(body)
  write_section(pathlib.Path(_NOTES.value), body)
  print(f"wrote the bench_measures section of {_NOTES.value}")


if __name__ == "__main__":
  app.run(run_main(main))
