"""runio.RunFolder and the shared choices of saved steps and runs, on a folder of random params."""

import json

import jax
import numpy as np
import pytest

from grokjax import checkpoint, runio
from grokjax.config import SweepConfig
from grokjax.errors import CheckpointError, ConfigError, RunFolderError
from grokjax.measures.apply import read_rows, write_rows
from grokjax.model import init_params
from grokjax.slt import invariance

CFG = SweepConfig(ops=("add", "mul"), p=7, seeds=(0, 1), weight_decays=(1.0,), steps=4,
                  batch_size=8, eval_every=2, ckpt_every=2, log_points=0, model="tiny")
STEPS = (0, 2, 4)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """A run folder of 4 runs whose parameters at STEPS are random; returns (path, saved trees)."""
  out = tmp_path_factory.mktemp("runio")
  runio.write_config(out, CFG, ["cpu"])
  shapes = jax.eval_shape(lambda: init_params(CFG.model_config, jax.random.key(0)))
  mgr = checkpoint.manager(out, checkpoint.PARAMS)
  rng, saved = np.random.default_rng(0), {}
  for step in STEPS:
    saved[step] = jax.tree.map(
        lambda s: rng.normal(size=(len(CFG.runs), *s.shape)).astype(np.float32), shapes)
    checkpoint.save(mgr, step, saved[step])
  mgr.close()
  return out, saved


def test_open_reads_config_runs_and_steps_once(folder):
  path, _ = folder
  f = runio.RunFolder.open(path)
  assert f.cfg == CFG and f.steps == STEPS and len(f.runs) == 4
  assert list(f.run_table) == json.loads((path / "config.json").read_text())["runs"]
  assert f.file("measures.csv") == path / "measures.csv" and not f.has_table("measures")
  with pytest.raises(RunFolderError, match="not a run folder"):
    runio.RunFolder.open(path / "nope")


def test_params_are_the_saved_arrays_at_steps_x_runs(folder):
  path, saved = folder
  f = runio.RunFolder.open(path)
  got = f.params([4, 0], [3, 1])  # order asked is kept
  for leaf, s4, s0 in zip(jax.tree.leaves(got), jax.tree.leaves(saved[4]),
                          jax.tree.leaves(saved[0])):
    assert leaf.shape == (2, 2, *s4.shape[1:])
    np.testing.assert_array_equal(leaf[0], s4[[3, 1]])
    np.testing.assert_array_equal(leaf[1], s0[[3, 1]])
  one = checkpoint.load_params(path, 2, op="mul", seed=1)  # run 3: (mul, wd 1, seed 1)
  every = checkpoint.load_stacked_params(path, 2)
  for a, b, s in zip(jax.tree.leaves(one), jax.tree.leaves(every), jax.tree.leaves(saved[2])):
    np.testing.assert_array_equal(a, s[3])
    np.testing.assert_array_equal(b, s)
  with pytest.raises(CheckpointError, match=r"step\(s\) \[3\] not saved"):
    f.params([3])
  with pytest.raises(RunFolderError, match=r"run index\(es\) \[4\] not in the folder"):
    f.params([2], [4])
  with pytest.raises(RunFolderError, match="not in the folder"):
    checkpoint.load_params(path, 2, index=-1)


def test_run_checks():
  assert runio.check_runs(CFG, None) == [0, 1, 2, 3]
  assert runio.check_runs(CFG, [2, 0]) == [2, 0]
  for bad in ([4], [], [-1, 0]):
    with pytest.raises(RunFolderError, match="not in the folder"):
      runio.check_runs(CFG, bad)
  assert runio.filter_runs(CFG, ops=["mul"], runs=[0, 3]) == [3]
  with pytest.raises(RunFolderError, match=r"\[9\] not in the folder"):
    runio.filter_runs(CFG, runs=[0, 9])  # an index out of range is an error, never dropped


def test_choose_steps():
  saved = [0, 40, 80, 120, 1]
  assert runio.choose_steps(saved) == [0, 1, 40, 80, 120]
  assert runio.choose_steps(saved, steps=[80, 0, 80]) == [0, 80]
  assert runio.choose_steps(saved, every=40) == [0, 40, 80, 120]
  assert runio.choose_steps(saved, every=50) == [0]
  assert runio.choose_steps(saved, every=50, keep_last=True) == [0, 120]
  with pytest.raises(CheckpointError, match=r"step\(s\) \[2, 3\] not saved"):
    runio.choose_steps(saved, steps=[3, 2, 40])
  with pytest.raises(ConfigError, match="no steps given"):
    runio.choose_steps(saved, steps=[])
  with pytest.raises(ConfigError, match=">= 1"):
    runio.choose_steps(saved, every=0)
  with pytest.raises(CheckpointError, match="multiple of 7"):
    runio.choose_steps([1, 2], every=7)
  with pytest.raises(CheckpointError, match="no checkpoints"):
    runio.choose_steps([])


def test_log_spaced_picks_the_saved_step_nearest_each_log_target():
  rng = np.random.default_rng(1)
  for _ in range(50):
    saved = sorted(set(rng.integers(0, 5000, size=rng.integers(1, 30)).tolist()))
    n, first = int(rng.integers(1, 8)), int(rng.choice([1, 100]))
    got = runio.log_spaced(saved, n, first)
    pos = np.array([s for s in saved if s > 0], float)
    if not pos.size:
      assert got == saved[-1:]
      continue
    # independently: log-distance matrix, argmin per target
    lo = pos[np.argmin(np.abs(np.log(pos / min(first, max(pos[-1] / 10, 1)))))]
    targets = np.exp(np.linspace(np.log(lo), np.log(pos[-1]), n))
    want = sorted({int(pos[j]) for j in np.argmin(np.abs(np.log(pos[None] / targets[:, None])),
                                                   axis=1)})
    assert got == want and len(got) <= n and (n == 1 or got[-1] == saved[-1])


def test_check_same_config(folder):
  path, _ = folder
  runio.check_same_config(path, CFG, hint="h")
  other = SweepConfig(**{**CFG.to_dict(), "p": 11, "steps": 8})
  with pytest.raises(RunFolderError, match=r"differs in p: folder has 7, asked 11; steps: .*; h"):
    runio.check_same_config(path, other, hint="h")


def test_measures_rows_round_trip_through_the_one_reader_and_writer(tmp_path):
  rows = {(r, s): {**runio.run_fields(r, CFG.runs[r]), "step": s, "a": r + s / 3,
                   **({"b": -1e-300} if s else {})} for r in range(2) for s in (0, 7)}
  write_rows(tmp_path / "m.csv", rows)
  back = read_rows(tmp_path / "m.csv")
  assert sorted(back) == sorted(rows)
  for k, row in rows.items():
    assert back[k]["a"] == row["a"] and back[k]["op"] == row["op"]
    assert type(back[k]["run"]) is int and type(back[k]["weight_decay"]) is float
    assert back[k]["b"] == row["b"] if "b" in row else np.isnan(back[k]["b"])
  assert read_rows(tmp_path / "absent.csv") == {}


def test_sampler_settings_default_to_the_one_table():
  assert invariance.sampler_settings(["sgld"]) == [("sgld", *invariance.SAMPLER_SETTINGS["sgld"])]
  assert invariance.sampler_settings(["sgld", "riemannian"], [1e-4], [3.0, 2.0]) == [
      ("sgld", 1e-4, 3.0), ("riemannian", 1e-4, 2.0)]
  with pytest.raises(ConfigError, match="2 values for 1 samplers"):
    invariance.sampler_settings(["sgld"], [1e-4, 1e-5])
  with pytest.raises(ConfigError, match="unknown sampler"):
    invariance.sampler_settings(["nope"])
