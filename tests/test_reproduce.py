"""The one-command pipeline on the tiny preset: report, resume, bad input, Colab notebook."""

import dataclasses
import os
import pathlib
import re
import shutil

import jax
import numpy as np
import pytest

from grokjax import cli, report, runio
from grokjax import pipeline as pipe
from grokjax.config import PRESETS
from grokjax.errors import ConfigError, RunFolderError
from grokjax import plan as plan_lib
from grokjax.plan import PLANS

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_cfg():
  return dataclasses.replace(PRESETS["tiny"], steps=300, ckpt_every=100, log_points=4)


FAST_SKIP = ("llc", "invariance", "surrogate")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
  """Every stage from scratch on the tiny preset, once for this file's tests."""
  out = tmp_path_factory.mktemp("reproduce") / "run"
  lines = []
  paths = pipe.reproduce(tiny_cfg(), out, PLANS["tiny"], write=lines.append,
                         devices=jax.devices()[:1])  # conftest splits the CPU in 4
  return out, paths, lines


def finite(path, columns, rows=None):
  t = runio.read_csv(path)
  sel = slice(None) if rows is None else rows
  for c in columns:
    assert c in t, f"{path.name} lacks {c}"
    assert np.isfinite(t[c][sel].astype(float)).all(), f"{path.name}: {c} has non-finite values"
  return t


def check_report(out, paths, lines, skipped=(), lenses=PLANS["tiny"].measure_lenses):
  md, html = paths["md"].read_text(), paths["html"].read_text()
  figs = re.findall(r"!\[Figure \d+\]\(([^)]+)\)", md)
  assert len(figs) >= 12 and html.count("data:image/png;base64,") == len(figs)
  assert 'src="http' not in html  # self-contained
  for png in figs:
    assert (out / "report" / png).stat().st_size > 5000
    assert (out / "report" / png).with_suffix(".pdf").is_file()
  ops = runio.load_config(out).ops
  for name in ("fig1_curves", f"fig2_causal_{ops[0]}", "fig3a_embedding_fourier", "fig3b_fourier",
               "fig4_bdm", "fig4_quantised", "fig5_geometry", "fig5_occam",
               "fig8_lead_ranking", "fig8_lead_ranking_sigmoid"):
    assert f"figures/{name}.png" in figs
  assert ("figures/fig6_llc.png" in figs) == ("llc" not in skipped)
  for stage in pipe.STAGES[1:]:
    assert any(f"== {stage}" in l for l in lines)
  assert md.count("Not measured") == sum(s in ("llc", "invariance", "surrogate") for s in skipped)
  finite(out / "metrics.csv", ("train_acc", "test_acc", "test_loss"))
  prefixes = tuple({"spectral": "spectral_entropy", "fourier": ("fourier", "occam", "circulant"),
                    "geometry": "geometry"}.get(l, l) for l in lenses)
  prefixes = tuple(x for p in prefixes for x in ((p,) if isinstance(p, str) else p))
  cols = [c for src, c, _, _ in report.MEASURES if src == "measures"]
  m = finite(out / "measures.csv", [c for c in cols if c.startswith(prefixes)])
  bdm = np.isfinite(m["bdm/2d/total"])
  assert bdm.sum() >= 3 * len(runio.load_config(out).runs)
  finite(out / "measures.csv", [c for c in cols if c.startswith(("bdm", "block", "comp"))], bdm)
  if "llc" not in skipped:
    finite(out / "llc.csv", ("llc_mean", "llc_std"))
  finite(out / "causal.csv", ("logit_diff", "prob"))
  finite(paths["grokking"], ("final_test_acc", "final_train_acc"))
  lead = runio.read_csv(paths["lead_times"])
  assert np.isfinite(lead["transition_step"]).any()
  corr = runio.read_csv(paths["correlations"])
  assert np.isfinite(corr["spearman_mean"]).mean() > 0.8
  status = runio.read_csv(paths["reproduction_status"])
  assert set(status["status"]) <= {"agrees", "differs", "mixed", "not measured"}


@pytest.mark.slow  # the full pipeline fixture
def test_report_files_figures_and_tables(tiny_run):
  out, paths, _ = tiny_run
  check_report(*tiny_run)
  finite(out / "llc_invariance.csv", ("llc_mean",))
  finite(paths["surrogate_summary"], ("llc_init", "llc_final"))
  assert (out / "snapshots.npz").is_file()
  assert plan_lib.load(out) == PLANS["tiny"]  # the report's plan table is the one that ran
  t = runio.read_csv(paths["plan"])
  assert dict(zip(t["setting"], t["value"]))["measure_lenses"] == str(
      PLANS["tiny"].measure_lenses)


@pytest.mark.slow  # the full pipeline fixture
def test_rerun_resumes_every_stage(tiny_run):
  out, _, _ = tiny_run
  cfg, plan, quiet = tiny_cfg(), PLANS["tiny"], lambda s: None
  assert pipe.stage_train(cfg, out, quiet).startswith("reused")
  folder = runio.RunFolder.open(out)
  for stage in (pipe.stage_causal, pipe.stage_snapshots, pipe.stage_measures, pipe.stage_llc,
                pipe.stage_invariance):
    assert stage(folder, plan, quiet) == "reused", stage.__name__
  assert pipe.stage_surrogate(out, plan, quiet) == "reused"
  assert plan_lib.load(out) == plan  # the plan the report read


@pytest.mark.slow  # the full pipeline fixture
def test_skipped_stages_are_reported_as_not_measured(tiny_run, tmp_path):
  """A plan that runs fewer lenses, with the compile-heavy stages skipped, on a copy of the
  finished folder whose skipped stages' outputs are gone: the rest is reused."""
  out = tmp_path / "run"
  shutil.copytree(tiny_run[0], out)
  for name in ("llc.csv", "llc_invariance.csv"):
    (out / name).unlink()
  shutil.rmtree(out / "surrogate")
  lines = []
  fast = dataclasses.replace(PLANS["tiny"], measure_lenses=("spectral", "fourier"))
  paths = pipe.reproduce(tiny_cfg(), out, fast, skip=FAST_SKIP, write=lines.append,
                         devices=jax.devices()[:1])
  check_report(out, paths, lines, skipped=FAST_SKIP, lenses=fast.measure_lenses)
  for stage in ("train", "causal", "snapshots"):
    assert any(f"] {stage}: reused" in l for l in lines), (stage, lines)
  assert plan_lib.load(out) == fast
  assert not (out / "llc.csv").exists() and not (out / "surrogate").exists()


def test_bad_input(tmp_path):
  with pytest.raises(ConfigError, match="cannot skip"):
    pipe.reproduce(tiny_cfg(), tmp_path, PLANS["tiny"], skip=("train",))
  runio.write_config(tmp_path, tiny_cfg(), ["cpu:0"])
  other = dataclasses.replace(tiny_cfg(), p=29)
  with pytest.raises(RunFolderError, match="differs in p"):
    pipe.stage_train(other, tmp_path, print)


def test_log_spaced_steps():
  saved, first = [0, 1, 2, 5, 10, 100, 250, 500, 1000, 10000, 100000], pipe.FIRST_STEP
  assert runio.log_spaced(saved, 4, first) == [100, 1000, 10000, 100000]
  assert runio.log_spaced([0, 50, 100], 4, first) == [50, 100]
  assert runio.log_spaced([0, 1, 3, 9, 16, 40, 80, 120], 4, first) == [16, 40, 80, 120]
  assert runio.log_spaced([0], 4, first) == [0]
  assert cli.cpu_device_count(16) in (1, 2, 4, 8, 16)


@pytest.mark.slow
def test_colab_notebook_runs_on_cpu(tmp_path):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  env = {"GROKJAX_PRESET": "tiny", "GROKJAX_INSTALL": "0", "GROKJAX_OUT": str(tmp_path / "run"),
         "GROKJAX_STEPS": "300", "GROKJAX_SKIP": "causal,llc,invariance,surrogate",
         "GROKJAX_DRY_RUN": "0"}  # the dry run has its own tests (test_dryrun.py)
  nb = nbformat.read(REPO / "experiments" / "colab_tpu.ipynb", as_version=4)
  old = {k: os.environ.get(k) for k in env}
  os.environ.update(env)  # the kernel inherits the environment
  try:
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(REPO)}}).execute()
  finally:
    for k, v in old.items():
      if v is None:
        os.environ.pop(k)
      else:
        os.environ[k] = v
  assert (tmp_path / "run" / "report" / "report.html").stat().st_size > 50_000
  assert (tmp_path / "run" / "report.zip").is_file()
