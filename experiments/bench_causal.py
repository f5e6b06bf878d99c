"""Benchmark of the causal lens: speed on the paper model, memory on GPT-2-medium's shape.

  python -m experiments.bench_causal                 # speed and memory
  python -m experiments.bench_causal --part=speed
  python -m experiments.bench_causal --part=memory --gpt_runs=384:2:4,16:4:4,16:16:4,16:16:16
  python -m experiments.bench_causal --part=scale --scale_shapes=gpt2-medium,gpt2-large

speed:  all 8 heads of the paper model (2 x 4), 256 prompt pairs of x + y mod 97, all
        three metrics with standard errors: compile time, then the median of --repeats
        calls (target < 1 s after compilation on a 2-core CPU). Also the cumulative
        ablation curves (importance + 5 random orders, 9 points each).
memory: the 24 x 16-head GPT-2-medium shape (d 1024, random weights); each
        --gpt_runs item heads:pairs:max_batch patches the first `heads` heads (384 = all)
        for `pairs` pairs with at most `max_batch` prompts per forward pass, in a fresh
        process. The peak resident memory of the patching call (VmHWM, reset just before
        it) minus the memory held before it shows that the extra memory follows the chunk
        size (max_batch), not the number of pairs or of heads.
scale:  the full-depth GPT-2-medium (24 x 16) and -large (36 x 20) shapes, random weights,
        each in a fresh process: the patching heat map of every head (--scale_pairs pairs)
        and the ablation curves (importance + --scale_random orders x 9 points on
        --scale_examples examples) at the default chunk (worlds.default_max_batch), under
        jit: compile and run seconds, and the peak extra memory of each run as above.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import subprocess
import sys
import time

from absl import app, flags

_PART = flags.DEFINE_enum("part", "all", ["all", "speed", "memory", "memory_child", "scale",
                                          "scale_child"], "what to run ('all': speed, memory)")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed calls after compilation")
_GPT_RUNS = flags.DEFINE_list("gpt_runs", ["384:2:4", "16:4:4", "16:16:4", "16:16:16"],
                              "memory part: heads:pairs:max_batch items")
_HEADS = flags.DEFINE_integer("heads", 384, "memory_child: heads patched")
_PAIRS = flags.DEFINE_integer("pairs", 4, "memory_child: pairs")
_MAX_BATCH = flags.DEFINE_integer("max_batch", 4, "memory_child: prompts per forward pass")
_SCALE_SHAPES = flags.DEFINE_list("scale_shapes", ["gpt2-medium", "gpt2-large"],
                                  "scale part: model presets, one process each")
_SCALE_PAIRS = flags.DEFINE_integer("scale_pairs", 2, "scale part: prompt pairs patched")
_SCALE_EXAMPLES = flags.DEFINE_integer("scale_examples", 8, "scale part: ablation examples")
_SCALE_RANDOM = flags.DEFINE_integer("scale_random", 2, "scale part: random ablation orders")


def _timed(fn, *args, repeats: int):
  import jax

  t0 = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times), times


def speed(repeats: int) -> dict:
  import jax

  from grokjax import tasks
  from grokjax.causal import ablation, patching
  from grokjax.causal.pairs import sample_pairs
  from grokjax.config import MODEL_PRESETS
  from grokjax.model import init_params

  cfg = MODEL_PRESETS["paper"]
  params = jax.jit(lambda k: init_params(cfg, k))(jax.random.key(0))
  pairs = sample_pairs("add", 97, 256, key=jax.random.key(1))
  first, med, times = _timed(patching.patching_fn(cfg), params, pairs, repeats=repeats)
  out = {"patching_first_call_s": first, "patching_median_s": med, "patching_times_s": times}
  print(f"patching, paper model (2 layers x 4 heads), 256 pairs, 3 metrics: first call "
        f"(compile + run) {first:.2f}s, then median {med:.3f}s over {repeats} calls")
  x, y = tasks.make_task("add", 97)
  curves = ablation.curves_fn(cfg, n_random=5)
  imp = patching.patching_fn(cfg)(params, pairs)["logit_diff/mean"]
  key = jax.random.key_data(jax.random.key(2))
  first, med, _ = _timed(curves, params, x[:1024], y[:1024], imp, key, repeats=repeats)
  out.update(ablation_first_call_s=first, ablation_median_s=med)
  print(f"ablation curves, 1024 examples, importance + 5 random orders x 9 points: first "
        f"call {first:.2f}s, then median {med:.3f}s")
  return out


def _rss_kb(field: str) -> int:
  for line in pathlib.Path("/proc/self/status").read_text().splitlines():
    if line.startswith(field + ":"):
      return int(line.split()[1])
  raise RuntimeError(f"{field} not in /proc/self/status")


def random_params(cfg):
  """N(0, 0.02) weights (LayerNorm scales 1) of the model's shapes: cheap to make."""
  import jax
  import jax.numpy as jnp

  from grokjax.model import init_params

  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
  leaves, tree = jax.tree.flatten_with_path(shapes)

  @jax.jit
  def make(key):
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(tree, [
        jnp.ones(s.shape, s.dtype) if str(getattr(p[-1], "key", "")) == "scale"
        else 0.02 * jax.random.normal(k, s.shape, s.dtype) for k, (p, s) in zip(keys, leaves)])

  return make(jax.random.key(0))


def memory_child(n_heads: int, n_pairs: int, max_batch: int) -> dict:
  import jax

  from grokjax.causal import patching
  from grokjax.causal.pairs import sample_pairs
  from grokjax.config import MODEL_PRESETS

  cfg = MODEL_PRESETS["gpt2-medium"]
  params = jax.block_until_ready(random_params(cfg))
  pairs = sample_pairs("add", 97, n_pairs, key=jax.random.key(1))
  heads = [(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)][:n_heads]
  fn = patching.patching_fn(cfg, heads=heads, max_batch=max_batch)
  t0 = time.perf_counter()
  compiled = fn.lower(params, pairs).compile()  # compile first: its memory is not the chunk's
  compile_s = time.perf_counter() - t0
  before = _rss_kb("VmRSS")
  pathlib.Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
  t0 = time.perf_counter()
  out = jax.block_until_ready(compiled(params, pairs))
  run_s = time.perf_counter() - t0
  peak = _rss_kb("VmHWM")
  assert all(bool(jax.numpy.isfinite(out[f"{m}/mean"][:n_heads // cfg.n_heads]).all())
             for m in ("logit_diff", "prob"))
  return {"pairs": n_pairs, "max_batch": max_batch, "heads": n_heads,
          "compile_s": compile_s, "run_s": run_s, "rss_before_mib": before / 1024,
          "peak_mib": peak / 1024, "extra_mib": (peak - before) / 1024}


def child(part: str, *flags: str) -> dict:
  """The JSON row that `--part=<part>` prints last, from a fresh process (own peak RSS)."""
  res = subprocess.run([sys.executable, "-m", "experiments.bench_causal", f"--part={part}", *flags],
                       capture_output=True, text=True)
  if res.returncode != 0:
    raise RuntimeError(res.stderr[-3000:])
  return json.loads(res.stdout.strip().splitlines()[-1])


def memory(specs: list[str]) -> list[dict]:
  rows = []
  for spec in specs:
    k, n, b = (int(v) for v in spec.split(":"))
    row = child("memory_child", f"--heads={k}", f"--pairs={n}", f"--max_batch={b}")
    rows.append(row)
    print(f"gpt2-medium shape, {k} heads, {n} pairs, max_batch {b}: run "
          f"{row['run_s']:.1f}s (compile {row['compile_s']:.1f}s), RSS before "
          f"{row['rss_before_mib']:.0f} MiB, peak {row['peak_mib']:.0f} MiB, "
          f"extra {row['extra_mib']:.0f} MiB", flush=True)
  return rows


def _measured(fn, *args) -> tuple[dict, object]:
  """Compiles fn for args, then runs it once: seconds and peak extra RSS of the run."""
  import jax

  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  compile_s = time.perf_counter() - t0
  before = _rss_kb("VmRSS")
  pathlib.Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
  t0 = time.perf_counter()
  out = jax.block_until_ready(compiled(*args))
  run_s = time.perf_counter() - t0
  extra = (_rss_kb("VmHWM") - before) / 1024
  return {"compile_s": compile_s, "run_s": run_s, "extra_mib": extra}, out


def scale_child(shape: str, n_pairs: int, n_examples: int, n_random: int) -> dict:
  import jax
  import numpy as np

  from grokjax import tasks
  from grokjax.causal import ablation, patching, worlds
  from grokjax.causal.pairs import sample_pairs
  from grokjax.config import MODEL_PRESETS

  cfg = MODEL_PRESETS[shape]
  params = jax.block_until_ready(random_params(cfg))
  pairs = sample_pairs("sub", 97, n_pairs, key=jax.random.key(1))
  patch, effects = _measured(patching.patching_fn(cfg), params, pairs)
  assert np.isfinite(np.asarray(effects["logit_diff/mean"])).all()
  x, y = tasks.make_task("sub", 97)
  key = jax.random.key_data(jax.random.key(2))
  curves, out = _measured(ablation.curves_fn(cfg, n_random=n_random, points=9), params,
                          x[:n_examples], y[:n_examples], effects["logit_diff/mean"], key)
  assert np.isfinite(np.asarray(out["importance/loss"])).all()
  return {"shape": shape, "heads": cfg.n_layers * cfg.n_heads, "pairs": n_pairs,
          "examples": n_examples, "max_batch": worlds.default_max_batch(cfg),
          "rss_params_mib": _rss_kb("VmRSS") / 1024,
          **{f"patching_{k}": v for k, v in patch.items()},
          **{f"ablation_{k}": v for k, v in curves.items()}}


def scale(shapes: list[str]) -> list[dict]:
  rows = []
  for shape in shapes:
    row = child("scale_child", f"--scale_shapes={shape}", f"--scale_pairs={_SCALE_PAIRS.value}",
                f"--scale_examples={_SCALE_EXAMPLES.value}",
                f"--scale_random={_SCALE_RANDOM.value}")
    rows.append(row)
    print(f"{shape}, {row['heads']} heads, max_batch {row['max_batch']}: patching "
          f"({row['pairs']} pairs) run {row['patching_run_s']:.1f}s (compile "
          f"{row['patching_compile_s']:.1f}s), extra {row['patching_extra_mib']:.0f} MiB; "
          f"ablation curves ({row['examples']} examples) run {row['ablation_run_s']:.1f}s "
          f"(compile {row['ablation_compile_s']:.1f}s), extra {row['ablation_extra_mib']:.0f} "
          f"MiB", flush=True)
  return rows


def main(argv):
  del argv
  if _PART.value == "memory_child":
    print(json.dumps(memory_child(_HEADS.value, _PAIRS.value, _MAX_BATCH.value)))
    return
  if _PART.value == "scale_child":
    print(json.dumps(scale_child(_SCALE_SHAPES.value[0], _SCALE_PAIRS.value,
                                 _SCALE_EXAMPLES.value, _SCALE_RANDOM.value)))
    return
  if _PART.value == "scale":
    scale(_SCALE_SHAPES.value)
    return
  if _PART.value in ("all", "speed"):
    speed(_REPEATS.value)
  if _PART.value in ("all", "memory"):
    memory(_GPT_RUNS.value)


if __name__ == "__main__":
  app.run(main)
