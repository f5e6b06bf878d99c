"""Asynchronous checkpoints: a SIGKILL mid-training, then --resume, equals an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np

from grokjax import checkpoint, runio

ARGS = ("-m", "experiments.train", "--preset=tiny", "--ckpt_trigger_acc=0.05")


def train(tmp_path, out, *extra, **kw):
  cmd = [sys.executable, *ARGS, f"--out={out}", f"--compilation_cache={tmp_path / 'cache'}",
         *extra]
  return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def saved_dirs(out):
  params = out / "checkpoints" / "params"
  return [p.name for p in params.iterdir()] if params.is_dir() else []


def metrics(out):
  m = runio.read_csv(out / "metrics.csv")
  order = np.lexsort((m["run"], m["step"]))
  return {k: v[order] for k, v in m.items()}


def test_sigkill_mid_training_then_resume_equals_uninterrupted(tmp_path):
  run, ref = tmp_path / "run", tmp_path / "ref"
  proc = train(tmp_path, run)
  deadline = time.time() + 400
  # past the early log-spaced steps and some triggered ones, well before the last step
  while sum(n.isdigit() and int(n) >= 100 for n in saved_dirs(run)) < 3:
    assert proc.poll() is None, f"training ended before the kill: {proc.stdout.read()}"
    assert time.time() < deadline, "no checkpoints appeared"
    time.sleep(0.05)
  os.kill(proc.pid, signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  assert metrics(run)["step"].max() < 1500
  # an unfinished save (orbax's temporary folder) is not a step and is cleared on resume
  junk = run / "checkpoints" / "params" / "1499.orbax-checkpoint-tmp"
  junk.mkdir(exist_ok=True)
  (junk / "partial").write_bytes(b"\0" * 100)
  assert all(isinstance(s, int) for s in checkpoint.list_steps(run))
  assert 1499 not in checkpoint.list_steps(run)
  resumed = train(tmp_path, run, "--resume")
  whole = train(tmp_path, ref)
  for p in (resumed, whole):
    output = p.communicate(timeout=600)[0]
    assert p.returncode == 0, output
  assert not [n for n in saved_dirs(run) if "orbax-checkpoint-tmp" in n]
  steps = checkpoint.list_steps(ref)
  assert checkpoint.list_steps(run) == steps and len(steps) > 15  # triggers saved some
  a, b = metrics(run), metrics(ref)
  assert a.keys() == b.keys()
  for k, v in b.items():
    np.testing.assert_array_equal(a[k], v, err_msg=k)
  cfg = runio.load_config(ref)
  pa, pb = (checkpoint.load_runs(d, cfg, steps, [0]) for d in (run, ref))
  jax.tree.map(np.testing.assert_array_equal, pa, pb)
