"""Training throughput of the paper model: one run against the authors' loop, R runs in one program.

  python -m experiments.bench_train --out=runs/bench
  python -m experiments.bench_train --runs=1,16 --steps=50 --rounds=5

One run against the authors' PyTorch-eager loop (experiments/torch_reference.py; needs
`pip install -e .[bench]`): each side is timed in a process of its own, the two
interleaved over --rounds rounds (torch, jax, torch, jax, ...), since a JAX runtime's
threads slow a loop that runs after it in the same process; every round is reported
with the median ratio. Then, for R in --runs, one sweep program of R paper-model runs
(x - y mod 97, batch 512) timed over --steps steps after compilation (compile time
apart), and the wall time, compilation included, until x - y mod 97 at the paper's
settings (wd 1.0) first reaches test accuracy 0.99. Writes bench_train.json and
bench_train.md in --out.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

from absl import app, flags

from grokjax import runio
from grokjax.cli import parse_ints, run_main, use_cpu_devices
from grokjax.errors import ConfigError

_RUNS = flags.DEFINE_string("runs", "1,2,4,8,16", "sweep sizes to time")
_STEPS = flags.DEFINE_integer("steps", 60, "timed steps per sweep size")
_GROK_STEPS = flags.DEFINE_integer("grok_steps", 3000, "step budget for the time-to-grok run; 0 skips")
_TORCH = flags.DEFINE_bool("torch", True, "also time the PyTorch-eager loop when torch is installed")
_TORCH_DEVICE = flags.DEFINE_string("torch_device", "cpu", "device of the PyTorch loop (cpu, cuda)")
_OUT = flags.DEFINE_string("out", "runs/bench", "folder for bench_train.json / .md")
_CPU_DEVICES = flags.DEFINE_integer("cpu_devices", 1, "XLA host devices on a CPU-only machine")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "interleaved rounds of the one-run comparison")
_SIDE = flags.DEFINE_enum("side", None, ["jax", "torch"], "time one side alone and print its "
                          "result as one JSON line (what each round's process runs)")


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


def time_torch(steps: int, device: str) -> dict:
  import jax
  import numpy as np
  import torch

  from experiments import torch_reference
  from grokjax import tasks

  inputs, targets = tasks.make_task("sub", 97)
  is_train = np.asarray(tasks.split(jax.random.key(0), 97, 0.5).is_train)
  sps = torch_reference.steps_per_second(inputs[is_train], targets[is_train], steps=steps,
                                           device=device)
  return {"steps_per_s": sps, "torch": torch.__version__, "device": device,
          "threads": torch.get_num_threads()}


def one_side(side: str) -> dict:
  """One side's steps/s, measured in this process alone."""
  if side == "torch":
    return time_torch(_STEPS.value, _TORCH_DEVICE.value)
  return time_sweep(1, _STEPS.value)


def interleaved(rounds: int) -> dict:
  """torch, jax, torch, jax, ...: each side in a fresh process; every round and the median."""
  rows = []
  for r in range(rounds):
    row = {"round": r + 1}
    for side in ("torch", "jax"):
      cmd = [sys.executable, "-m", "experiments.bench_train", f"--side={side}",
             f"--steps={_STEPS.value}", f"--torch_device={_TORCH_DEVICE.value}",
             f"--cpu_devices={_CPU_DEVICES.value}"]
      done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=os.environ)
      row[side] = json.loads(done.stdout.strip().splitlines()[-1])["steps_per_s"]
    row["ratio"] = row["jax"] / row["torch"]
    rows.append(row)
    print(row, flush=True)
  return {"rounds": rows, "median_ratio": statistics.median(r["ratio"] for r in rows)}


def to_markdown(res: dict) -> str:
  lines = [f"Machine: {res['machine']}; devices: {res['devices']}; date: {res['date']}", "",
           "| runs in one program | compile (s) | steps/s | run-steps/s | per-run cost vs 1 run |",
           "|---:|---:|---:|---:|---:|"]
  base = res["sweeps"][0]["run_steps_per_s"] / res["sweeps"][0]["runs"]
  for r in res["sweeps"]:
    per_run = base / r["run_steps_per_s"]  # seconds per run-step, relative to one run
    lines.append(f"| {r['runs']} | {r['compile_s']:.1f} | {r['steps_per_s']:.1f} | "
                 f"{r['run_steps_per_s']:.1f} | {per_run:.2f}x |")
  if res.get("versus_torch"):
    v = res["versus_torch"]
    lines += ["", "One run against the authors' PyTorch-eager loop, each in its own process:", "",
              "| round | torch steps/s | grokjax steps/s | ratio |", "|---:|---:|---:|---:|"]
    lines += [f"| {r['round']} | {r['torch']:.1f} | {r['jax']:.1f} | {r['ratio']:.2f}x |"
              for r in v["rounds"]]
    lines += ["", f"Median ratio: {v['median_ratio']:.2f}x"]
  if res.get("grok"):
    g = res["grok"]
    lines += ["", f"x - y mod 97, wd 1.0, seed 42: test acc >= 0.99 at step {g['grok_step']}, "
              f"{g['wall_s_incl_compile']:.1f} s wall including compilation"]
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  use_cpu_devices(_CPU_DEVICES.value)
  if _SIDE.value:
    print(json.dumps(one_side(_SIDE.value)), flush=True)
    return
  import jax

  res = {**runio.provenance([str(d) for d in jax.devices()]),
         "date": time.strftime("%Y-%m-%d"), "steps": _STEPS.value, "sweeps": []}
  if _TORCH.value:
    if importlib.util.find_spec("torch") is None:
      raise ConfigError("torch is not installed: pip install -e .[bench], or pass --notorch")
    res["versus_torch"] = interleaved(_ROUNDS.value)
  for n in parse_ints(_RUNS.value, "runs"):
    res["sweeps"].append(time_sweep(n, _STEPS.value))
    print(res["sweeps"][-1], flush=True)
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
