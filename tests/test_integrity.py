"""Run folders are never silently corrupted or misread: atomic writes, validated tables and
configs, checkpoint digests, resume from the newest intact state, recomputed lens files."""

import dataclasses
import json
import os
import pathlib
import shutil
import stat

import numpy as np
import pytest

from grokjax import checkpoint, pipeline, runio, sweep
from grokjax.config import PRESETS
from grokjax.errors import CheckpointError, RunFolderError
from grokjax.measures import apply, snapshots

CFG = dataclasses.replace(PRESETS["tiny"], steps=60, eval_every=20, ckpt_every=20, log_points=0)
quiet = dict(write=lambda s: None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """A finished tiny sweep: checkpoints at 0, 20, 40, 60 (state keeps 40 and 60)."""
  out = tmp_path_factory.mktemp("trained") / "run"
  sweep.train_sweep(CFG, out, **quiet)
  return out


def copy_of(run, tmp_path) -> pathlib.Path:
  shutil.copytree(run, tmp_path / "run")
  return tmp_path / "run"


def largest_file(step_dir: pathlib.Path) -> pathlib.Path:
  return max((f for f in step_dir.rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)


def flip_middle(path: pathlib.Path, n: int = 16) -> None:
  data = bytearray(path.read_bytes())
  mid = len(data) // 2
  data[mid:mid + n] = bytes(b ^ 0xFF for b in data[mid:mid + n])
  path.write_bytes(bytes(data))


def sorted_metrics(run) -> dict:
  m = runio.read_csv(pathlib.Path(run) / "metrics.csv")
  order = np.lexsort((m["step"], m["run"]))
  return {k: v[order] for k, v in m.items()}


# ---------------------------------------------------------------- atomic writes

def test_atomic_write_keeps_the_old_file_when_a_write_fails(tmp_path):
  path = tmp_path / "t.csv"
  runio.write_csv(path, [{"run": 0, "x": 1.5}])
  old = path.read_bytes()
  with pytest.raises(KeyError):  # the second row lacks x: the write stops half-way
    runio.write_csv(path, [{"run": 1, "x": 2.5}, {"run": 2}])
  assert path.read_bytes() == old and os.listdir(tmp_path) == ["t.csv"]

  class Unsavable:
    def __array__(self, *a, **k):
      raise RuntimeError("killed")

  snap = tmp_path / snapshots.FILE
  snapshots.save(snap, {"steps": np.arange(3), "runs": np.arange(1),
                        "matrix_name": np.asarray("m")})
  old = snap.read_bytes()
  with pytest.raises(RuntimeError, match="killed"):
    snapshots.save(snap, {"steps": np.arange(4), "big": np.ones(10_000), "bad": Unsavable()})
  assert snap.read_bytes() == old and sorted(os.listdir(tmp_path)) == ["snapshots.npz", "t.csv"]


def test_atomic_write_replaces_whole_with_the_umask_permissions(tmp_path):
  path = tmp_path / "a.json"
  runio.write_json(path, {"a": 1})
  with runio.atomic_write(path) as f:
    f.write('{"a": 2}')
    assert json.loads(path.read_text()) == {"a": 1}  # the old file until the block ends
  assert runio.read_json(path) == {"a": 2}
  umask = os.umask(0)
  os.umask(umask)
  assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# ---------------------------------------------------------------- validated tables

def write(path: pathlib.Path, text: str) -> pathlib.Path:
  path.write_bytes(text.encode())
  return path


def test_read_csv_names_the_file_and_line_of_a_short_row(tmp_path):
  p = write(tmp_path / "causal.csv", "run,step,x\r\n0,0,1.0\r\n0,1\r\n0,2,3.0\r\n")
  with pytest.raises(RunFolderError, match=r"causal.csv line 3 has 2 fields, the header has 3; "
                                           "the file is truncated or was edited"):
    runio.read_csv(p)


def test_read_csv_refuses_a_cut_off_last_line_unless_asked_to_drop_it(tmp_path):
  p = write(tmp_path / "metrics.csv", "run,step,x\r\n0,0,1.0\r\n0,20,0.12")  # 0.1234 cut off
  with pytest.raises(RunFolderError, match="line 3 is incomplete"):
    runio.read_csv(p)
  t = runio.read_csv(p, drop_partial_last=True)
  assert t["step"].tolist() == [0] and t["x"].tolist() == [1.0]


@pytest.mark.parametrize("text, where", [
    ("run,op,step,x\n0,add,0,1.0\n1,add,0,abc\n2,add,0,2.0\n", "line 3: column 'x' holds 'abc'"),
    ("run,op,step,x\n0,add,0,1.0\nx,add,0,2.0\n", "line 3: column 'run' holds 'x'"),
    ("run,op,step,x\n0,add,,1.0\n", "line 2: column 'step' holds ''"),
])
def test_read_csv_refuses_a_stray_string_in_a_column_of_numbers(tmp_path, text, where):
  with pytest.raises(RunFolderError, match=where):  # measures.csv: x is a column of numbers
    runio.read_csv(write(tmp_path / "t.csv", text), numeric=runio.measures_numeric)


def test_read_csv_keeps_a_column_that_mixes_numbers_and_text(tmp_path):
  text = 'key,value\nsteps,4\nlenses,"(\'bdm\',)"\nevery,10\n'
  t = runio.read_csv(write(tmp_path / "plan.csv", text))
  assert t["value"].tolist() == ["4", "('bdm',)", "10"]


def test_read_csv_keeps_string_columns_and_empty_cells(tmp_path):
  t = runio.read_csv(write(tmp_path / "summary.csv",
                           "run,op,grok_step,x\n0,add,1400,nan\n1,sub,,inf\n2,mul,,1\n"))
  assert t["run"].dtype == np.int64 and t["x"].dtype == np.float64
  assert t["op"].tolist() == ["add", "sub", "mul"] and t["grok_step"].tolist() == ["1400", "", ""]


def test_read_csv_refuses_binary_garbage(tmp_path):
  p = tmp_path / "llc.csv"
  p.write_bytes(bytes(range(256)) * 4)
  with pytest.raises(RunFolderError, match="llc.csv: it is not a CSV table"):
    runio.read_csv(p)


def test_truncated_stage_table_is_recomputed_with_one_line(trained, tmp_path):
  run = copy_of(trained, tmp_path)
  folder = runio.RunFolder.open(run)
  rows = [{**runio.run_fields(0, CFG.runs[0]), "step": s, "effect": 0.5} for s in folder.steps]
  runio.write_csv(run / "causal.csv", rows)
  lines = []
  assert pipeline._steps_done(folder, "causal", 1, list(folder.steps), lines.append)
  text = (run / "causal.csv").read_bytes()
  (run / "causal.csv").write_bytes(text[:-5])  # the last row cut off in its last field
  assert not pipeline._steps_done(folder, "causal", 1, list(folder.steps), lines.append)
  assert len(lines) == 1 and "causal.csv line" in lines[0] and "recomputing it" in lines[0]


# ---------------------------------------------------------------- config.json and timings

@pytest.mark.parametrize("change, field", [
    ({"steps": "abc"}, "'steps' must be an integer, got 'abc'"),
    ({"seeds": "x"}, "'seeds' must be a list whose items are each an integer, got 'x'"),
    ({"p": [23]}, "'p' must be an integer, got \\[23\\]"),
    ({"lrs": [0.003, None]}, "'lrs' must be a list whose items are each a number"),
    ({"train_fracs": [1.5]}, "train_frac must lie in \\(0, 1\\), got 1.5"),
])
def test_config_json_with_a_wrongly_typed_field_is_one_line_naming_it(tmp_path, change, field):
  runio.write_config(tmp_path, CFG, ["cpu"])
  record = json.loads((tmp_path / "config.json").read_text())
  record["config"].update(change)
  (tmp_path / "config.json").write_text(json.dumps(record))
  with pytest.raises(RunFolderError, match=f"config.json: .*{field}") as e:
    runio.load_config(tmp_path)
  assert "\n" not in str(e.value)


def test_config_json_of_binary_garbage_is_one_line(tmp_path):
  (tmp_path / "config.json").write_bytes(b"\x89PNG\x00\xff" * 50)
  with pytest.raises(RunFolderError, match="config.json: it is not JSON text"):
    runio.load_config(tmp_path)
  (tmp_path / "config.json").write_text("[1, 2]")
  with pytest.raises(RunFolderError, match='no "config" object'):
    runio.load_config(tmp_path)


def test_corrupted_timings_are_rewritten_with_a_warning(tmp_path):
  (tmp_path / pipeline.TIMINGS).write_bytes(b'{"train": {"status": "do')  # cut off
  lines = []
  clock = pipeline.Clock(lines.append)
  clock.stages["train"] = {"status": "done", "seconds": 1.0}
  pipeline._save_timings(tmp_path, clock)
  assert len(lines) == 1 and "warning" in lines[0] and "rewriting it" in lines[0]
  assert runio.read_json(tmp_path / pipeline.TIMINGS) == {"train": {"status": "done",
                                                                    "seconds": 1.0}}


# ---------------------------------------------------------------- checkpoint digests

def test_saved_steps_have_digests_of_the_saved_trees(trained):
  digests = checkpoint.read_digests(trained / "checkpoints" / "params")
  assert sorted(digests) == [0, 20, 40, 60]
  params = checkpoint.load_stacked_params(trained, 60)
  assert checkpoint.digest(params) == digests[60]
  # state keeps the latest two; the digest of the one dropped at a save goes at the next
  assert {40, 60} <= set(checkpoint.read_digests(trained / "checkpoints" / "state")) <= {20, 40, 60}


def test_flipped_bytes_in_a_checkpoint_are_never_read_silently(trained, tmp_path):
  run = copy_of(trained, tmp_path)
  step_dir = run / "checkpoints" / "params" / "20"
  flip_middle(largest_file(step_dir))
  with pytest.raises(CheckpointError, match=str(step_dir)):
    checkpoint.load_params(run, 20, index=0)
  checkpoint.load_params(run, 40, index=0)  # the other steps still load


def test_a_checkpoint_that_differs_from_its_digest_is_named(trained, tmp_path):
  run = copy_of(trained, tmp_path)
  path = run / "checkpoints" / "params" / checkpoint.DIGESTS
  digests = json.loads(path.read_text())
  digests["40"] = digests["20"]  # what orbax reads back is not what was saved at 40
  path.write_text(json.dumps(digests))
  with pytest.raises(CheckpointError, match=f"checkpoint {run}/checkpoints/params/40 does not "
                                            r"match its checksum \(corrupted on disk\)"):
    checkpoint.load_params(run, 40, index=0)


def test_folders_without_digests_load_unchecked(trained, tmp_path):
  run = copy_of(trained, tmp_path)
  (run / "checkpoints" / "params" / checkpoint.DIGESTS).unlink()
  a = checkpoint.load_stacked_params(run, 60)
  b = checkpoint.load_stacked_params(trained, 60)
  assert checkpoint.digest(a) == checkpoint.digest(b)


# ---------------------------------------------------------------- resume

def test_resume_falls_back_to_the_newest_intact_state_and_drops_a_cut_off_row(trained, tmp_path):
  """State 60 truncated on disk, and metrics.csv's last row cut off mid-append: --resume
  restarts from state 40, drops the rows after it and the cut-off line, and ends equal to
  the uninterrupted sweep."""
  run = copy_of(trained, tmp_path)
  newest = largest_file(run / "checkpoints" / "state" / "60")
  newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])
  text = (run / "metrics.csv").read_bytes()
  (run / "metrics.csv").write_bytes(text[: -len(text.splitlines()[-1]) // 2])
  with pytest.raises(RunFolderError, match="incomplete"):
    runio.read_csv(run / "metrics.csv")
  lines = []
  sweep.train_sweep(CFG, run, resume=True, write=lines.append)
  warned = [l for l in lines if "resuming from the older state checkpoint at step 40" in l]
  assert len(warned) == 1 and "checkpoints/state/60" in warned[0]
  a, b = sorted_metrics(run), sorted_metrics(trained)
  assert a["step"].tolist() == b["step"].tolist()
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  for kind in ("params", "state"):  # step 60 saved again, equal to the uninterrupted one
    assert (checkpoint.read_digests(run / "checkpoints" / kind)[60]
            == checkpoint.read_digests(trained / "checkpoints" / kind)[60])


def test_resume_with_no_intact_state_is_one_line(trained, tmp_path):
  run = copy_of(trained, tmp_path)
  for step in (40, 60):
    flip_middle(largest_file(run / "checkpoints" / "state" / str(step)))
  with pytest.raises(CheckpointError, match="no state checkpoint is intact"):
    sweep.train_sweep(CFG, run, resume=True, **quiet)


# ---------------------------------------------------------------- lens files

def test_half_written_snapshots_are_recomputed(trained, tmp_path, monkeypatch):
  run = copy_of(trained, tmp_path)
  folder = runio.RunFolder.open(run)
  steps = folder.log_spaced(pipeline.plan_lib.PLANS["tiny"].snapshot_points, pipeline.FIRST_STEP)
  head = {"steps": np.asarray(steps), "runs": np.asarray([0]),
          "matrix_name": np.asarray("tok_embed"), "format": np.asarray(snapshots.FORMAT)}
  snapshots.save(run / snapshots.FILE, {**head, "x": np.ones(5000)})
  data = (run / snapshots.FILE).read_bytes()
  (run / snapshots.FILE).write_bytes(data[: len(data) // 2])
  with pytest.raises(RunFolderError, match="snapshots.npz"):
    snapshots.load(run / snapshots.FILE)
  monkeypatch.setattr(snapshots, "compute", lambda folder, steps, matrix, write: head)
  lines = []
  status = pipeline.stage_snapshots(folder, pipeline.plan_lib.PLANS["tiny"], lines.append)
  assert status.startswith("done") and any("recomputing it" in l for l in lines)
  assert snapshots.load(run / snapshots.FILE).current(steps, "tok_embed")


@pytest.mark.parametrize("edit, message", [
    (lambda rows: rows[:2] + [rows[2].replace(rows[2].split(",")[-1], "oops\r\n")] + rows[3:],
     "line 3: column .* holds 'oops'"),
    (lambda rows: rows[:2] + [",".join(rows[2].split(",")[:4]) + "\r\n"] + rows[3:],
     "line 3 has 4 fields"),
])
def test_edited_measures_csv_is_one_line_in_measure_reruns_and_the_report(trained, tmp_path,
                                                                          edit, message):
  from grokjax.report import tables

  run = copy_of(trained, tmp_path)
  folder = runio.RunFolder.open(run)
  rows = {(0, s): {**runio.run_fields(0, CFG.runs[0]), "step": s, "spectral/a": 0.5,
                   "spectral/b": float(s)} for s in folder.steps}
  apply.write_rows(run / apply.MEASURES, rows)
  text = (run / apply.MEASURES).read_bytes().decode().splitlines(keepends=True)
  (run / apply.MEASURES).write_bytes("".join(edit(text)).encode())
  with pytest.raises(RunFolderError, match=message):
    apply.measure_run_dir(folder, apply.MeasureOptions(lenses=("spectral",)), **quiet)
  with pytest.raises(RunFolderError, match=message):
    tables.load_tables(run)
