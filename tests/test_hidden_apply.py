"""The hidden-state lens on a trained tiny sweep: maps == PCA of the states, file, staleness."""

import importlib.util

import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import checkpoint, runio
from grokjax.errors import ConfigError, RunFolderError
from grokjax.measures import hidden, hidden_apply
from grokjax.measures.hidden_apply import HiddenOptions

SKLEARN = importlib.util.find_spec("sklearn") is not None
OPTS = HiddenOptions(steps=(40, 120), tsne_examples=60, perplexity=30.0, seed=3)


@pytest.fixture(scope="module")
def computed(tiny_run_dir):
  folder = runio.RunFolder.open(tiny_run_dir)
  return folder, hidden_apply.compute(folder, OPTS, write=lambda s: None)


def test_pca_maps_are_the_pca_of_the_states(computed):
  folder, arrays = computed
  cfg = folder.cfg
  runs = hidden_apply.runs_of(cfg)
  assert [cfg.runs[r].seed for r in runs] == [cfg.seeds[0]] * len(cfg.ops)
  assert list(arrays["sites"]) == ["tok_embed", "blocks.0", "blocks.1"]
  for r in runs:
    op = cfg.runs[r].op
    inputs, xs, answers = hidden.examples(op, cfg.p)
    np.testing.assert_array_equal(arrays[f"x|{op}"], xs)
    np.testing.assert_array_equal(arrays[f"answer|{op}"], answers)
    params = checkpoint.load_params(folder.path, 120, index=r)
    states = hidden.answer_states(cfg.model_config, params, jnp.asarray(inputs))
    want = hidden.pca(states["blocks.1"])
    np.testing.assert_allclose(arrays[f"pca|blocks.1|{r}|120"], want["coords"], atol=1e-4)
    np.testing.assert_allclose(arrays[f"explained|blocks.1|{r}|120"], want["explained"],
                               rtol=1e-4)
    rows = hidden.pca(params["tok_embed"]["embedding"][:cfg.p])
    assert arrays[f"pca|tok_embed|{r}|40"].shape == (cfg.p, 2)
    np.testing.assert_allclose(arrays[f"explained|tok_embed|{r}|120"], rows["explained"],
                               rtol=1e-4)
  # the maps move with training: step 40 and step 120 differ
  r = runs[0]
  assert not np.allclose(arrays[f"pca|blocks.0|{r}|40"], arrays[f"pca|blocks.0|{r}|120"])


@pytest.mark.skipif(not SKLEARN, reason="needs scikit-learn")
def test_tsne_maps_are_recorded_with_their_method_and_perplexity(computed):
  folder, arrays = computed
  assert str(arrays["tsne_method"]).startswith("sklearn.manifold.TSNE")
  r, op = hidden_apply.runs_of(folder.cfg)[0], folder.cfg.runs[0].op
  index = arrays[f"tsne_index|{op}"]
  assert index.shape == (60,) and len(set(index.tolist())) == 60
  assert arrays[f"tsne|blocks.1|{r}|120"].shape == (60, 2)
  assert arrays[f"tsne|tok_embed|{r}|120"].shape == (folder.cfg.p, 2)
  # 23 rows or 60 states cannot carry perplexity 30: the bound (n - 1) / 3 is used, recorded
  assert float(arrays["tsne_perplexity|tok_embed"]) == pytest.approx((folder.cfg.p - 1) / 3)
  assert float(arrays["tsne_perplexity|blocks.1"]) == pytest.approx(59 / 3)


def test_file_round_trip_and_staleness(computed, tmp_path):
  folder, arrays = computed
  path = tmp_path / hidden_apply.FILE
  hidden_apply.save(path, arrays)
  assert sorted(p.name for p in tmp_path.iterdir()) == [hidden_apply.FILE]  # no temp file left
  got = hidden_apply.load(path)
  runs = hidden_apply.runs_of(folder.cfg)
  assert got.current(OPTS, runs)
  np.testing.assert_array_equal(got.get("pca", site="blocks.0", run=runs[1], step=40),
                                arrays[f"pca|blocks.0|{runs[1]}|40"])
  assert got.get("pca", site="blocks.0", run=runs[1], step=80) is None
  assert not got.current(HiddenOptions(steps=(40, 80), tsne_examples=60, seed=3), runs)
  assert not got.current(HiddenOptions(steps=(40, 120), tsne_examples=60, seed=4), runs)
  assert not got.current(OPTS, runs[:1])
  assert hidden_apply.load(tmp_path / "absent.npz") is None
  (tmp_path / "bad.npz").write_bytes(b"not an npz")
  with pytest.raises(RunFolderError, match="cannot read"):
    hidden_apply.load(tmp_path / "bad.npz")


def test_without_scikit_learn_pca_only_and_said_so(tiny_run_dir, monkeypatch, tmp_path):
  folder = runio.RunFolder.open(tiny_run_dir)
  opts = HiddenOptions(steps=(120,), tsne_examples=60)
  real = importlib.util.find_spec
  monkeypatch.setattr(hidden_apply.importlib.util, "find_spec",
                      lambda name, *a: None if name == "sklearn" else real(name, *a))
  arrays = hidden_apply.compute(folder, opts, write=lambda s: None)
  assert str(arrays["tsne_method"]).startswith("not installed")
  assert not [k for k in arrays if k.startswith("tsne|")]
  assert [k for k in arrays if k.startswith("pca|")]
  hidden_apply.save(tmp_path / "h.npz", arrays)
  assert hidden_apply.load(tmp_path / "h.npz").current(opts, hidden_apply.runs_of(folder.cfg))
  monkeypatch.setattr(hidden_apply.importlib.util, "find_spec", real)
  # once scikit-learn is there, the PCA-only file is stale
  assert hidden_apply.load(tmp_path / "h.npz").current(
      opts, hidden_apply.runs_of(folder.cfg)) == (not SKLEARN)
  off = HiddenOptions(steps=(120,), tsne_examples=0)
  assert hidden_apply.tsne_method(off).startswith("off")


def test_a_step_not_saved_is_refused(tiny_run_dir):
  from grokjax.errors import GrokjaxError

  with pytest.raises(GrokjaxError):
    hidden_apply.compute(runio.RunFolder.open(tiny_run_dir), HiddenOptions(steps=(41,)),
                         write=lambda s: None)


def test_the_pipeline_stage_writes_then_reuses(tiny_run_dir, tmp_path):
  import dataclasses
  import shutil

  from grokjax import pipeline
  from grokjax.plan import PLANS

  run = shutil.copytree(tiny_run_dir, tmp_path / "run")
  folder = runio.RunFolder.open(run)
  plan = dataclasses.replace(PLANS["tiny"], hidden_points=2, hidden_tsne_examples=0)
  assert pipeline.stage_hidden(folder, plan, lambda s: None).startswith("done")
  steps = hidden_apply.load(run / hidden_apply.FILE).head["steps"]
  assert steps == pipeline.runio.log_spaced(folder.steps, 2, pipeline.FIRST_STEP)
  assert pipeline.stage_hidden(folder, plan, lambda s: None) == "reused"
  wider = dataclasses.replace(plan, hidden_examples=100)
  assert pipeline.stage_hidden(folder, wider, lambda s: None).startswith("done")
  assert hidden_apply.load(run / hidden_apply.FILE).arrays["x|add"].shape == (100,)


@pytest.mark.skipif(not SKLEARN, reason="needs scikit-learn")
def test_tsne_of_the_ends_only(tiny_run_dir):
  folder = runio.RunFolder.open(tiny_run_dir)
  opts = HiddenOptions(steps=(120,), tsne_examples=30, tsne_sites="ends")
  arrays = hidden_apply.compute(folder, opts, write=lambda s: None)
  r = hidden_apply.runs_of(folder.cfg)[0]
  assert sorted(k for k in arrays if k.startswith("tsne|") and f"|{r}|" in k) == [
      f"tsne|blocks.1|{r}|120", f"tsne|tok_embed|{r}|120"]
  assert f"pca|blocks.0|{r}|120" in arrays
  with pytest.raises(ConfigError, match="tsne_sites"):
    hidden_apply.compute(folder, HiddenOptions(steps=(120,), tsne_sites="middle"),
                         write=lambda s: None)
