"""A sweep over two processes (jax.distributed on localhost, CPU collectives via gloo).

Two `experiments.train --distributed` processes with two host devices each train a
4-run tiny sweep with the runs axis split over all four devices. The runs are
independent, so every device runs the same per-run program wherever it lives: the
metrics, the summary and every saved parameter must equal the single-process run on
four devices exactly (bit for bit), not to a tolerance.

The processes share one compilation cache folder, so only the first launch compiles.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from grokjax import checkpoint, runio, sweep
from grokjax.config import PRESETS

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
SWEEP = ["--preset=tiny", "--ops=add,mul", "--seeds=0,1", "--steps=30", "--eval_every=10",
         "--ckpt_every=10"]
CFG = dataclasses.replace(PRESETS["tiny"], ops=("add", "mul"), seeds=(0, 1), steps=30,
                          eval_every=10, ckpt_every=10)
COLUMNS = ("train_loss", "train_acc", "test_loss", "test_acc", "param_norm",
           "spectral_entropy/all")
DEADLINE_S = 600  # a whole launch on a loaded 2-core machine, compile included


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


class Job:
  """Processes of one `experiments.train --distributed` job on localhost."""

  def __init__(self, out, *flags, cache, n=2, ids=None, cwds=None, per_process=None,
               timeout_s=120, heartbeat_s=20):
    port = free_port()
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    self.procs = []
    for k in (range(n) if ids is None else ids):
      cmd = [sys.executable, "-m", "experiments.train", *SWEEP, f"--out={out}", *flags,
             *(per_process or {}).get(k, []), "--distributed", f"--coordinator=127.0.0.1:{port}",
             f"--num_processes={n}", f"--process_id={k}", f"--dist_timeout={timeout_s}",
             f"--heartbeat_timeout={heartbeat_s}", f"--compilation_cache={cache}"]
      cwd = ROOT if cwds is None else cwds[k]
      self.procs.append(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True))

  def wait(self, deadline_s=DEADLINE_S):
    t0 = time.monotonic()
    out = []
    for p in self.procs:
      try:
        stdout, stderr = p.communicate(timeout=max(1, deadline_s - (time.monotonic() - t0)))
      except subprocess.TimeoutExpired:
        self.kill()
        raise AssertionError(f"process still running after {deadline_s} s")
      out.append((p.returncode, stdout, stderr))
    return out, time.monotonic() - t0

  def kill(self, which=None):
    for k, p in enumerate(self.procs):
      if which is None or k == which:
        p.send_signal(signal.SIGKILL)
        p.wait()


def ok(results):
  for rc, stdout, stderr in results:
    assert rc == 0, stdout[-3000:] + stderr[-3000:]


def error_lines(stderr):
  return [l for l in stderr.splitlines() if l.startswith("error:")]


def wait_for(path, job, deadline_s=DEADLINE_S):
  t0 = time.monotonic()
  while not path.exists():
    if any(p.poll() is not None for p in job.procs):
      job.kill()
      raise AssertionError(f"a process ended before {path} appeared")
    if time.monotonic() - t0 > deadline_s:
      job.kill()
      raise AssertionError(f"{path} did not appear within {deadline_s} s")
    time.sleep(0.02)


def metrics(run_dir):
  m = runio.read_csv(pathlib.Path(run_dir) / "metrics.csv")
  order = np.lexsort((m["step"], m["run"]))
  return {k: v[order] for k, v in m.items()}


def assert_same_run(a, b):
  """Metrics, summary and every saved parameter of two run folders are bit-identical."""
  ma, mb = metrics(a), metrics(b)
  assert len(ma["step"]) == len(mb["step"]) == len(CFG.runs) * len(sweep.schedule(CFG)[0])
  for k in ("run", "step", *COLUMNS):
    np.testing.assert_array_equal(ma[k], mb[k], err_msg=k)
  sa, sb = runio.read_csv(a / "summary.csv"), runio.read_csv(b / "summary.csv")
  assert sa.keys() == sb.keys()
  for k in sa:
    np.testing.assert_array_equal(sa[k], sb[k], err_msg=k)
  steps = checkpoint.list_steps(a)
  assert steps == checkpoint.list_steps(b) == sorted(sweep.schedule(CFG)[1])
  for step in steps:
    pa, pb = checkpoint.load_stacked_params(a, step), checkpoint.load_stacked_params(b, step)
    for (path, x), y in zip(_leaves(pa), [l for _, l in _leaves(pb)]):
      np.testing.assert_array_equal(x, y, err_msg=f"step {step} {path}")


def _leaves(tree):
  import jax

  return jax.tree_util.tree_flatten_with_path(tree)[0]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
  return tmp_path_factory.mktemp("jax_cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The same sweep in this process, on its four host devices (set in conftest)."""
  import jax

  assert len(jax.devices()) == 4
  out = tmp_path_factory.mktemp("one_process") / "run"
  sweep.train_sweep(CFG, out, write=lambda s: None)
  return out


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, cache):
  """An uninterrupted two-process run; process 1 runs in another folder with the same
  relative --out, so anything it wrote would land in a folder of its own."""
  base = tmp_path_factory.mktemp("two_process")
  cwds = [base / "p0", base / "p1"]
  for c in cwds:
    c.mkdir()
  results, _ = Job("run", cache=cache, cwds=cwds).wait()
  ok(results)
  return cwds[0] / "run", cwds[1] / "run", results


def test_two_processes_equal_one_process(reference, two_process_run):
  run, _, _ = two_process_run
  assert runio.load_config(run) == runio.load_config(reference) == CFG
  assert_same_run(run, reference)


def test_only_process_0_writes(two_process_run, cache):
  run, other, ((_, out0, _), (_, out1, _)) = two_process_run
  written = sorted(str(p.relative_to(other)) for p in other.rglob("*") if p.is_file()) \
      if other.exists() else []
  assert written == []  # no CSV, config.json, figure or checkpoint file from process 1
  for name in ("config.json", "metrics.csv", "summary.csv", "curves.png"):
    assert (run / name).is_file(), name
  assert "grokjax: 4 runs x 30 steps on 4 cpu device(s)" in out0
  # gloo's own chatter ("[Gloo] Rank k is connected to n peer ranks ...") is written by its C++
  # side and can be split across lines when several ranks print at once
  gloo = ("[Gloo]", "peer ranks")
  assert [l for l in out1.splitlines() if l.strip() and not any(g in l for g in gloo)] == []
  assert len(runio.load_config(run).runs) == 4
  assert any(cache.iterdir())  # process 0 filled the shared compilation cache


def test_killed_and_resumed_equals_uninterrupted(tmp_path, two_process_run, cache):
  run = tmp_path / "run"  # one folder seen by both processes, as on a shared file system
  job = Job(run, cache=cache)
  wait_for(run / "checkpoints" / "state" / "4", job)
  job.kill()
  assert not (run / "summary.csv").exists()  # it really was interrupted
  saved = checkpoint._existing_manager(run, checkpoint.STATE).all_steps()
  assert max(saved) < CFG.steps
  results, _ = Job(run, "--resume", cache=cache).wait()
  ok(results)
  assert "resuming at" in results[0][1]
  assert_same_run(run, two_process_run[0])


def test_lenses_read_a_two_process_folder_on_one_process(tmp_path, reference, two_process_run):
  import shutil

  from grokjax.measures.apply import MeasureOptions, measure_run_dir

  run = tmp_path / "run"
  shutil.copytree(two_process_run[0], run)
  one = checkpoint.load_params(run, CFG.steps, op="mul", seed=1)
  ref = checkpoint.load_params(reference, CFG.steps, op="mul", seed=1)
  np.testing.assert_array_equal(one["unembed"]["kernel"], ref["unembed"]["kernel"])
  opts = MeasureOptions(lenses=("spectral", "fourier"), steps=(CFG.steps,))
  shutil.copytree(reference, tmp_path / "ref")
  a, b = (runio.read_csv(measure_run_dir(runio.RunFolder.open(d), opts, write=lambda s: None))
          for d in (run, tmp_path / "ref"))
  assert len(a["run"]) == len(CFG.runs)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_a_different_config_is_refused_in_one_line(tmp_path, cache):
  job = Job(tmp_path / "run", cache=cache, per_process={1: ["--steps=20"]})
  results, _ = job.wait()
  for rc, _, stderr in results:
    assert rc == 2, stderr[-2000:]
    assert error_lines(stderr) == [
        "error: process 1 was started with a different config than process 0 (steps: 20 vs "
        "30); start the same command on every process"], stderr[-2000:]
  assert not (tmp_path / "run").exists()


def test_a_process_that_never_joins_ends_the_other_in_one_line(tmp_path, cache):
  job = Job(tmp_path / "run", cache=cache, ids=[0], timeout_s=5)  # process 1 never starts
  ((rc, _, stderr),), seconds = job.wait()
  assert rc == 2 and len(error_lines(stderr)) == 1, stderr[-2000:]
  assert "process 0 of 2: not every process joined the coordinator" in stderr
  assert "Traceback" not in stderr and "Check failure" not in stderr
  assert seconds < 5 + 120  # the timeout plus start-up on a loaded machine


def test_a_dead_process_ends_the_other_in_one_line(tmp_path, cache):
  job = Job(tmp_path / "run", cache=cache, heartbeat_s=5)
  wait_for(tmp_path / "run" / "checkpoints" / "state" / "1", job)
  job.kill(which=1)
  t0 = time.monotonic()
  _, stderr = job.procs[0].communicate(timeout=120)
  rc = job.procs[0].returncode
  assert time.monotonic() - t0 < 60  # one stop, or the 5 s heartbeat, not forever
  assert rc == 2, stderr[-3000:]
  lines = error_lines(stderr)
  assert len(lines) == 1 and ("another process probably died" in lines[0]
                              or "process 1 of 2 stopped answering" in lines[0]), stderr[-3000:]
  assert "Traceback" not in stderr and "Check failure" not in stderr
