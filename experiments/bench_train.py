"""Training throughput of the paper model: R runs in one program, and PyTorch eager.

  python -m experiments.bench_train --out=runs/bench
  python -m experiments.bench_train --runs=1,16 --steps=50 --cpu_devices=2

For R in --runs it compiles one sweep program of the paper model (x - y mod 97,
batch 512) and times --steps steps after compilation (compile time reported apart).
With torch installed (`pip install -e .[bench]`) it times a straightforward
PyTorch-eager AdamW loop of the same model, batch and optimizer in the same
invocation. Then it trains x - y mod 97 at the paper's settings (wd 1.0) and reports
the wall time, compilation included, until test accuracy first reaches 0.99.
Writes bench_train.json and bench_train.md in --out.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import platform
import time

from absl import app, flags

from grokjax.cli import parse_ints, run_main, use_cpu_devices

_RUNS = flags.DEFINE_string("runs", "1,2,4,8,16", "sweep sizes to time")
_STEPS = flags.DEFINE_integer("steps", 60, "timed steps per sweep size")
_GROK_STEPS = flags.DEFINE_integer("grok_steps", 3000, "step budget for the time-to-grok run; 0 skips")
_TORCH = flags.DEFINE_bool("torch", True, "also time the PyTorch-eager loop when torch is installed")
_TORCH_DEVICE = flags.DEFINE_string("torch_device", "cpu", "device of the PyTorch loop (cpu, cuda)")
_OUT = flags.DEFINE_string("out", "runs/bench", "folder for bench_train.json / .md")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 1, "XLA host devices on a CPU-only machine")


def time_sweep(n_runs: int, steps: int) -> dict:
  import jax
  import jax.numpy as jnp

  from grokjax import sharding, sweep
  from grokjax.config import PRESETS

  base = PRESETS["paper"]
  cfg = dataclasses.replace(base, ops=("sub",), seeds=tuple(range(n_runs)), weight_decays=(1.0,))
  mesh = sharding.runs_mesh()
  n_pad = sharding.padded_size(n_runs, mesh)
  data, state = sweep.stacked_runs(cfg)
  runs = sharding.shard_runs(sharding.pad_runs(data, n_pad), mesh)
  state = sharding.shard_runs(sharding.pad_runs(state, n_pad), mesh)
  train_until, _ = sweep.compile_fns(cfg)
  t0 = time.perf_counter()
  state = jax.block_until_ready(train_until(state, runs, jnp.int32(1)))
  compile_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  state = jax.block_until_ready(train_until(state, runs, jnp.int32(steps)))
  wall = time.perf_counter() - t0
  return {"runs": n_runs, "compile_s": compile_s, "steps_per_s": steps / wall,
          "run_steps_per_s": n_runs * steps / wall}


def time_to_grok(max_steps: int) -> dict:
  import jax.numpy as jnp
  import numpy as np

  from grokjax import sharding, sweep
  from grokjax.config import PRESETS

  t0 = time.perf_counter()
  cfg = dataclasses.replace(PRESETS["paper"], ops=("sub",), seeds=(42,), weight_decays=(1.0,))
  mesh = sharding.runs_mesh()
  data, state = sweep.stacked_runs(cfg)
  n_pad = sharding.padded_size(1, mesh)
  runs = sharding.shard_runs(sharding.pad_runs(data, n_pad), mesh)
  state = sharding.shard_runs(sharding.pad_runs(state, n_pad), mesh)
  train_until, measure = sweep.compile_fns(cfg)
  for step in range(100, max_steps + 1, 100):
    state = train_until(state, runs, jnp.int32(100))
    acc = float(np.asarray(measure(state.params, runs)["test_acc"])[0])
    if acc >= 0.99:
      return {"grok_step": step, "wall_s_incl_compile": time.perf_counter() - t0}
  return {"grok_step": None, "wall_s_incl_compile": time.perf_counter() - t0}


def time_torch(steps: int, device: str) -> dict | None:
  if importlib.util.find_spec("torch") is None:
    return None
  import jax
  import numpy as np

  from experiments import torch_reference
  from grokjax import tasks

  inputs, targets = tasks.make_task("sub", 97)
  is_train = np.asarray(tasks.split(jax.random.key(0), 97, 0.5).is_train)
  sps = torch_reference.steps_per_second(inputs[is_train], targets[is_train], steps=steps,
                                           device=device)
  import torch
  return {"steps_per_s": sps, "torch": torch.__version__, "device": device,
          "threads": torch.get_num_threads()}


def to_markdown(res: dict) -> str:
  lines = [f"Machine: {res['machine']}; devices: {res['devices']}; date: {res['date']}", "",
           "| runs in one program | compile (s) | steps/s | run-steps/s | per-run cost vs 1 run |",
           "|---:|---:|---:|---:|---:|"]
  base = res["sweeps"][0]["run_steps_per_s"] / res["sweeps"][0]["runs"]
  for r in res["sweeps"]:
    per_run = base / r["run_steps_per_s"]  # seconds per run-step, relative to one run
    lines.append(f"| {r['runs']} | {r['compile_s']:.1f} | {r['steps_per_s']:.1f} | "
                 f"{r['run_steps_per_s']:.1f} | {per_run:.2f}x |")
  if res.get("torch"):
    t = res["torch"]
    lines += ["", f"PyTorch {t['torch']} eager loop ({t.get('device', 'cpu')}, {t['threads']} threads): "
              f"{t['steps_per_s']:.1f} steps/s; grokjax 1 run / torch = "
              f"{res['sweeps'][0]['steps_per_s'] / t['steps_per_s']:.2f}x"]
  if res.get("grok"):
    g = res["grok"]
    lines += ["", f"x - y mod 97, wd 1.0, seed 42: test acc >= 0.99 at step {g['grok_step']}, "
              f"{g['wall_s_incl_compile']:.1f} s wall including compilation"]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  use_cpu_devices(_CPU_DEVICES.value)
  import jax

  res = {"machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
         "devices": [str(d) for d in jax.devices()],
         "date": time.strftime("%Y-%m-%d"), "steps": _STEPS.value, "sweeps": []}
  for n in parse_ints(_RUNS.value, "runs"):
    res["sweeps"].append(time_sweep(n, _STEPS.value))
    print(res["sweeps"][-1], flush=True)
  if _TORCH.value:
    res["torch"] = time_torch(_STEPS.value, _TORCH_DEVICE.value)
    print("torch:", res["torch"], flush=True)
  if _GROK_STEPS.value:
    res["grok"] = time_to_grok(_GROK_STEPS.value)
    print("grok:", res["grok"], flush=True)
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  (out / "bench_train.json").write_text(json.dumps(res, indent=2) + "\n")
  (out / "bench_train.md").write_text(to_markdown(res))
  print(to_markdown(res))


if __name__ == "__main__":
  app.run(run_main(main))
