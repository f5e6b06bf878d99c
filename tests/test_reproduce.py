"""The one-command pipeline on the tiny preset, its resume, its bad input, and the Colab notebook."""

import dataclasses
import os
import pathlib
import re

import jax
import numpy as np
import pytest

from experiments import reproduce
from grokjax import report, runio
from grokjax.config import PRESETS
from grokjax.errors import ConfigError, RunFolderError

REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_cfg():
  return dataclasses.replace(PRESETS["tiny"], steps=600)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
  out = tmp_path_factory.mktemp("reproduce") / "run"
  lines = []
  paths = reproduce.reproduce(tiny_cfg(), out, reproduce.PLANS["tiny"], write=lines.append,
                              devices=jax.devices()[:1])  # conftest splits the CPU in 4
  return out, paths, lines


def finite(path, columns):
  t = runio.read_csv(path)
  for c in columns:
    assert c in t, f"{path.name} lacks {c}"
    assert np.isfinite(t[c].astype(float)).all(), f"{path.name}: {c} has non-finite values"
  return t


def test_report_files_figures_and_tables(pipeline):
  out, paths, lines = pipeline
  md, html = paths["md"].read_text(), paths["html"].read_text()
  figs = re.findall(r"!\[Figure \d+\]\(([^)]+)\)", md)
  assert len(figs) >= 12 and html.count("data:image/png;base64,") == len(figs)
  for png in figs:
    assert (out / "report" / png).stat().st_size > 5000
    assert (out / "report" / png).with_suffix(".pdf").is_file()
  for name in ("fig1_curves", "fig2_causal_add", "fig3a_embedding_fourier", "fig3b_fourier",
               "fig4_bdm", "fig4_quantised", "fig5_geometry", "fig5_occam", "fig6_llc",
               "fig6_invariance_sgld", "fig8_lead_ranking"):
    assert f"figures/{name}.png" in figs
  assert "Not measured" not in md  # every lens ran
  for stage in reproduce.STAGES[1:]:
    assert any(f"== {stage} ==" in l for l in lines)
  finite(out / "metrics.csv", ("train_acc", "test_acc", "test_loss"))
  finite(out / "measures.csv", [c for src, c, _, _ in report.MEASURES if src == "measures"])
  finite(out / "llc.csv", ("llc_mean", "llc_std"))
  finite(out / "causal.csv", ("logit_diff", "prob"))
  finite(out / "llc_invariance.csv", ("llc_mean",))
  finite(paths["grokking"], ("train_acc_099_step", "final_test_acc"))
  lead = finite(paths["lead_times"], ("n_samples",))
  assert np.isfinite(lead["transition_step"]).any()
  corr = runio.read_csv(paths["correlations"])
  assert np.isfinite(corr["spearman_mean"]).mean() > 0.8
  status = runio.read_csv(paths["reproduction_status"])
  assert set(status["status"]) <= {"agrees", "differs", "mixed", "not measured"}
  finite(paths["surrogate_final"], ("test_acc", "complexity/llc"))


def test_rerun_resumes_every_stage(pipeline):
  out, _, _ = pipeline
  cfg, plan, quiet = tiny_cfg(), reproduce.PLANS["tiny"], lambda s: None
  assert reproduce.stage_train(cfg, out, quiet).startswith("reused")
  assert reproduce.stage_causal(out, cfg, plan, quiet) == "reused"
  assert reproduce.stage_llc(out, cfg, plan, quiet) == "reused"
  assert reproduce.stage_invariance(out, cfg, plan, quiet) == "reused"
  assert reproduce.stage_surrogate(out, plan, quiet) == "reused"
  assert reproduce.stage_snapshots(out, cfg, plan, quiet) == "reused"
  lines = []
  reproduce.stage_measures(out, plan, lines.append)
  counts = [re.search(r"measure: (\d+) step\(s\).*; (\d+) step\(s\) already measured", l)
            for l in lines]
  counts = [c.groups() for c in counts if c]
  assert len(counts) == 2 and all(a == b for a, b in counts)


def test_bad_input(tmp_path):
  with pytest.raises(ConfigError, match="cannot skip"):
    reproduce.reproduce(tiny_cfg(), tmp_path, reproduce.PLANS["tiny"], skip=("train",))
  runio.write_config(tmp_path, tiny_cfg(), ["cpu:0"])
  other = dataclasses.replace(tiny_cfg(), p=29)
  with pytest.raises(RunFolderError, match="differs in p"):
    reproduce.stage_train(other, tmp_path, print)


def test_log_spaced_steps():
  saved = [0, 1, 2, 5, 10, 100, 250, 500, 1000, 10000, 100000]
  assert reproduce.log_spaced(saved, 4) == [100, 1000, 10000, 100000]
  assert reproduce.log_spaced([0, 50, 100], 4) == [50, 100]
  assert reproduce.log_spaced([0], 4) == [0]
  assert reproduce.cpu_device_count(16) in (1, 2, 4, 8, 16)


@pytest.mark.slow
def test_colab_notebook_runs_on_cpu(tmp_path):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  env = {"GROKJAX_PRESET": "tiny", "GROKJAX_INSTALL": "0", "GROKJAX_OUT": str(tmp_path / "run"),
         "GROKJAX_STEPS": "300", "GROKJAX_SKIP": "causal,llc,invariance,surrogate"}
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
