"""Run folders cannot be destroyed by accident: --overwrite, the writer's lock, recovery.

Most cases call the library; the command line is used where its exit status and one
line are the point (a user's folder under --overwrite, a folder locked by another
process). One tiny sweep of 4 steps is trained once and copied where a case changes it.
"""

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import sys
import types

import pytest

from grokjax import folder, runio, sweep
from grokjax import pipeline as pipe
from grokjax.cli import SWEEP_LIST_FLAGS, SWEEP_SCALAR_FLAGS, sweep_config_from_flags
from grokjax.config import PRESETS
from grokjax.errors import ConfigError, RunFolderError
from grokjax.plan import PLANS
from grokjax.surrogate import results
from grokjax.surrogate import train as sfm

ROOT = pathlib.Path(__file__).resolve().parents[1]
CFG = dataclasses.replace(PRESETS["tiny"], steps=4, eval_every=2, ckpt_every=2, log_points=0)
ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "OPENBLAS_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
quiet = dict(write=lambda s: None)


@pytest.fixture(scope="module")
def recovered(tmp_path_factory):
  """A folder stopped after config.json and one metrics row, before any checkpoint, then
  trained by the pipeline's train stage: (the folder, the stage's status and lines)."""
  out = tmp_path_factory.mktemp("guard") / "run"
  out.mkdir()
  runio.write_config(out, CFG, ["cpu:0"])
  header = ",".join([*runio.RUN_COLUMNS, "step", "train_loss"])
  (out / "metrics.csv").write_text(f"{header}\n0,add,0,1.0,0.003,0.8,0,3.1\n")
  lines = []
  status = pipe.stage_train(CFG, out, lines.append)
  return out, status, lines


@pytest.fixture(scope="module")
def trained(recovered):
  return recovered[0]


def copy_of(run: pathlib.Path, to: pathlib.Path) -> pathlib.Path:
  shutil.copytree(run, to)
  return to


def cli(module, *args, cwd):
  proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                        timeout=300, cwd=cwd, env=ENV)
  return proc, [l for l in proc.stderr.splitlines() if l.startswith("error:")]


def snapshot(path: pathlib.Path) -> dict:
  return {str(p.relative_to(path)): p.stat().st_mtime_ns for p in sorted(path.rglob("*"))}


# ---------------------------------------------------------------- recognising a folder

def test_kind_follows_the_documented_rule(tmp_path, trained):
  assert folder.kind(tmp_path / "missing") == "empty"
  (tmp_path / "e").mkdir()
  (tmp_path / "e" / folder.LOCK).write_text("")
  assert folder.kind(tmp_path / "e") == "empty"  # the lock file alone is nothing
  assert folder.kind(trained) == "training"
  cases = {"no_config": None, "bad_json": "{", "no_config_key": {"ops": ["add"]},
           "foreign_keys": {"config": {"ops": ["add"], "seeds": [0], "weight_decays": [1],
                                       "steps": 4, "thesis": "chapter 1"}},
           "too_few_fields": {"config": {"ops": ["add"]}}}
  for name, content in cases.items():
    d = tmp_path / name
    d.mkdir()
    (d / "checkpoints").mkdir()  # a checkpoints/ folder alone does not make it ours
    if content is not None:
      (d / "config.json").write_text(content if isinstance(content, str) else json.dumps(content))
    assert folder.kind(d) is None, name
  (tmp_path / "f").write_text("x")
  assert folder.kind(tmp_path / "f") is None
  s = tmp_path / "s"
  s.mkdir()
  (s / "config.json").write_text(json.dumps({"config": sfm.SurrogateConfig().to_dict()}))
  assert folder.kind(s) == "surrogate"


# ---------------------------------------------------------------- 1. --overwrite

def test_overwrite_keeps_a_users_folder_cli(tmp_path):
  d = tmp_path / "d"
  d.mkdir()
  (d / "thesis.txt").write_text("x")
  proc, errors = cli("experiments.train", "--preset=tiny", "--steps=20", "--overwrite",
                     "--out=d", cwd=tmp_path)
  assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
  assert errors == ["error: d holds 1 entry (thesis.txt) and is not a grokjax training run "
                    "folder; refusing to delete it"], proc.stderr
  assert sorted(p.name for p in d.iterdir()) == ["thesis.txt"]  # not even a lock file
  assert (d / "thesis.txt").read_text() == "x"


def test_phase_overwrite_keeps_a_users_folder_cli(tmp_path):
  d = tmp_path / "d"
  d.mkdir()
  (d / "data").mkdir()
  (d / "data" / "table.csv").write_text("x")
  proc, errors = cli("experiments.phase", "--steps=4", "--x_values=0", "--y_values=0.5",
                     "--overwrite", "--out=d", cwd=tmp_path)
  assert proc.returncode == 2, proc.stderr
  assert errors == ["error: d holds 1 entry (data/) and is not a grokjax training run "
                    "folder; refusing to delete it"], proc.stderr
  assert [p.name for p in d.iterdir()] == ["data"] and (d / "data" / "table.csv").is_file()


def test_existing_folder_message_names_only_flags_the_command_has(tmp_path):
  (tmp_path / "notes.txt").write_text("x")
  for resumable, hint in ((True, "pass --resume to continue it or --overwrite to replace it"),
                          (False, "pass --overwrite to replace it")):
    with pytest.raises(RunFolderError) as e:
      sweep.check_folder(PRESETS["tiny"], tmp_path, resume=False, overwrite=False,
                         resumable=resumable)
    assert str(e.value) == f"{tmp_path} already exists; {hint}"


def test_overwrite_refuses_the_current_folder_a_file_and_a_surrogate_folder(tmp_path,
                                                                           monkeypatch):
  for i in range(6):
    (tmp_path / f"chapter{i}.tex").write_text("x")
  monkeypatch.chdir(tmp_path)
  with pytest.raises(RunFolderError, match=r"^\. holds 6 entries \(chapter0.tex, chapter1.tex, "
                     r"chapter2.tex, chapter3.tex, \.\.\.\) and is not a grokjax training"):
    sweep.train_sweep(CFG, ".", overwrite=True, **quiet)
  with pytest.raises(RunFolderError, match="chapter0.tex is a file, not a run folder"):
    sweep.train_sweep(CFG, "chapter0.tex", overwrite=True, **quiet)
  s = tmp_path / "sfm"
  s.mkdir()
  (s / "config.json").write_text(json.dumps({"config": sfm.SurrogateConfig().to_dict()}))
  with pytest.raises(RunFolderError, match="is a surrogate run folder, not a training one"):
    sweep.train_sweep(CFG, s, overwrite=True, **quiet)
  assert len(list(tmp_path.iterdir())) == 7 and (s / "config.json").is_file()


# ---------------------------------------------------------------- 2. validated first

def test_bad_config_under_overwrite_leaves_the_old_run(tmp_path, trained):
  run = copy_of(trained, tmp_path / "run")
  before = snapshot(run)
  names = [*SWEEP_LIST_FLAGS, *SWEEP_SCALAR_FLAGS, "lr", "train_frac"]
  flag_values = types.SimpleNamespace(**{n: None for n in names})
  flag_values.seeds = ["99999999999999999999"]
  with pytest.raises(ConfigError, match=r"seeds must be integers in \[0, 2\*\*32\)"):
    sweep_config_from_flags(flag_values, "tiny")  # experiments.train stops here
  with pytest.raises(ConfigError, match="seeds must be integers"):
    sweep.train_sweep(dataclasses.replace(CFG, seeds=(2 ** 70,)), run, overwrite=True, **quiet)
  assert snapshot(run) == before


def test_overwrite_clears_a_run_folder_but_its_lock_file(tmp_path, trained):
  run = copy_of(trained, tmp_path / "run")
  (run / "report").mkdir()
  (run / "measures.csv").write_text("old lens output\n")
  (tmp_path / "elsewhere").mkdir()
  (run / "link").symlink_to(tmp_path / "elsewhere")
  with folder.lock(run):
    lock_inode = (run / folder.LOCK).stat().st_ino
    assert sweep.prepare_folder(dataclasses.replace(CFG, steps=2), run, False, True,
                                **quiet) is False
    assert [p.name for p in run.iterdir()] == [folder.LOCK]
    assert (run / folder.LOCK).stat().st_ino == lock_inode
  assert (tmp_path / "elsewhere").is_dir()  # a link is removed, not what it points to
  assert not folder.held(run)


# ---------------------------------------------------------------- 3. the lock

@contextlib.contextmanager
def held_elsewhere(path):
  """`path`'s lock held by another process while the block runs; yields its pid."""
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from grokjax import folder; "
       "folder.hold(sys.argv[1]); print('held', flush=True); time.sleep(300)", str(path)],
      stdout=subprocess.PIPE, text=True, env=ENV)
  try:
    assert holder.stdout.readline().strip() == "held"
    yield holder.pid
  finally:
    holder.kill()
    holder.wait()


def test_a_second_writer_gets_one_line_and_writes_nothing(tmp_path):
  path = tmp_path / "busy"
  with held_elsewhere(path) as pid:
    proc, errors = cli("experiments.train", "--preset=tiny", "--steps=20", f"--out={path}",
                       cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and errors[0].startswith(
        f"error: {path} is in use by another grokjax process (pid {pid}, started "), errors
    assert "wait for it to finish, or write to another folder" in errors[0]
    assert [p.name for p in path.iterdir()] == [folder.LOCK]
    with pytest.raises(RunFolderError, match=f"in use by another grokjax process \\(pid {pid},"):
      pipe.reproduce(CFG, path, PLANS["tiny"], **quiet)
    with pytest.raises(RunFolderError, match="in use"):
      sweep.train_sweep(CFG, path, **quiet)
    assert [p.name for p in path.iterdir()] == [folder.LOCK]


def test_lens_commands_refuse_a_locked_run_folder(tmp_path, trained):
  path = copy_of(trained, tmp_path / "run")
  with held_elsewhere(path) as pid:
    proc, errors = cli("experiments.measure", f"--run_dir={path}", "--lenses=spectral",
                       cwd=tmp_path)
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert f"{path} is in use by another grokjax process (pid {pid}," in errors[0]
  assert not (path / "measures.csv").exists()


def test_lock_is_reentrant_and_released(tmp_path):
  path = tmp_path / "run"
  with folder.lock(path):
    with folder.lock(path):  # the pipeline holds it while its sweep takes it again
      assert folder.held(path)
    assert folder.held(path)
    record = json.loads((path / folder.LOCK).read_text())
    assert record["pid"] == os.getpid() and record["started"]
  assert not folder.held(path)
  probe = subprocess.run(
      [sys.executable, "-c", "import sys; from grokjax import folder; folder.hold(sys.argv[1]); "
       "print('got it')", str(path)], capture_output=True, text=True, env=ENV, timeout=120)
  assert probe.stdout.strip() == "got it", probe.stderr


# ---------------------------------------------------------------- 4. --out that cannot be one

def test_out_that_is_a_file_or_under_a_file(tmp_path):
  (tmp_path / "f").write_text("x")
  with pytest.raises(RunFolderError, match="f is a file, not a run folder"):
    sweep.train_sweep(CFG, tmp_path / "f", **quiet)
  with pytest.raises(RunFolderError, match=r"cannot create .*f/sub: .*f is a file, not a folder"):
    sweep.train_sweep(CFG, tmp_path / "f" / "sub", **quiet)
  with pytest.raises(RunFolderError, match="is a file, not a run folder"):
    pipe.reproduce(CFG, tmp_path / "f", PLANS["tiny"], **quiet)
  with pytest.raises(RunFolderError, match="is a file, not a run folder"):
    results.check_out_dir(tmp_path / "f", overwrite=True)
  assert (tmp_path / "f").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_whose_parent_is_not_writable(tmp_path):
  parent = tmp_path / "ro"
  parent.mkdir()
  parent.chmod(0o500)
  try:
    with pytest.raises(RunFolderError, match="ro is not writable"):
      sweep.train_sweep(CFG, parent / "run", **quiet)
  finally:
    parent.chmod(0o700)


# ---------------------------------------------------------------- 5. the surrogate

def test_surrogate_overwrite_refuses_a_training_folder(tmp_path, trained):
  run = copy_of(trained, tmp_path / "run")
  before = (run / "config.json").read_text()
  with pytest.raises(RunFolderError, match="is a training run folder, not a surrogate one; "
                                           "refusing to delete it"):
    results.check_out_dir(run, overwrite=True)
  assert (run / "config.json").read_text() == before
  with pytest.raises(RunFolderError, match="is a training run folder"):
    results.write_run_folder(sfm.SurrogateConfig(), None, run, overwrite=True)  # refused first
  assert (run / "config.json").read_text() == before
  own = tmp_path / "sfm"
  own.mkdir()
  (own / "config.json").write_text(json.dumps({"config": sfm.SurrogateConfig().to_dict()}))
  with pytest.raises(RunFolderError, match="pass --overwrite to replace its files"):
    results.check_out_dir(own)
  assert results.check_out_dir(own, overwrite=True) == own  # its own kind may be replaced


# ---------------------------------------------------------------- 6. reproduce's recovery

def test_stopped_before_the_first_state_starts_again(recovered):
  out, status, lines = recovered
  assert status.startswith("done")
  assert f"{out}: training never saved a state; starting it again from step 0" in lines
  assert not any("--overwrite" in l for l in lines)
  steps = runio.read_csv(out / "metrics.csv")["step"].tolist()
  assert steps == sweep.schedule(CFG)[0]  # the partial row is gone, not repeated
  assert sweep._state_steps(out)[-1] == CFG.steps


def test_reproduce_names_what_is_in_a_users_folder(tmp_path):
  out = tmp_path / "notes"
  out.mkdir()
  (out / "notes.md").write_text("ideas")
  with pytest.raises(RunFolderError) as info:
    pipe.reproduce(CFG, out, PLANS["tiny"], **quiet)
  msg = str(info.value)
  assert msg == (f"{out} holds 1 entry (notes.md) and is not a grokjax run folder; reproduce "
                 "writes a new folder or continues its own: choose another --out")
  assert "--overwrite" not in msg and "--resume" not in msg
  assert [p.name for p in out.iterdir()] == ["notes.md"]  # no timings, no lock file
