"""The report: rendering, and the whole analysis on a synthetic run folder with planted leads."""

import base64
import re

import numpy as np
import pytest

from grokjax import report, runio
from grokjax.config import SweepConfig
from tests.test_analysis import STEPS, synthetic_tables

# measures.csv columns: BDM falls 0.3 decades before test accuracy, the Fourier Gini
# (planted falling, the paper says it rises) 0.25 decades after.
PLANTED = (("bdm/2d/total", 0.3), ("fourier/embed_gini", -0.25))


def test_markdown_and_html_rendering(tmp_path):
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots()
  ax.plot([0, 1])
  fig.savefig(tmp_path / "f.png")
  r = report.Report("t")
  r.heading("Section")
  r.text("A **bold** `code` line.\n\n- one\n- two")
  r.figure(tmp_path / "f.png", "what | settings")
  r.table("tab", [{"name": "a|b", "x": 1.0, "y": float("nan"), "z": 0.123456}], caption="c")
  paths = r.write(tmp_path / "rep")
  md = paths["md"].read_text()
  assert "| a\\|b | 1 | n/a | 0.1235 |" in md
  assert "![Figure 1](../f.png)" in md and "*Figure 1.* what | settings" in md
  html = paths["html"].read_text()
  png = base64.b64encode((tmp_path / "f.png").read_bytes()).decode()
  assert f"data:image/png;base64,{png}" in html
  assert "<b>bold</b>" in html and "<li>two</li>" in html and "<code>code</code>" in html
  t = runio.read_csv(paths["tab"])
  assert t["name"][0] == "a|b" and t["x"][0] == 1.0 and np.isnan(t["y"][0])


def test_fmt():
  assert report.fmt(3.0) == "3" and report.fmt(np.float64(2.5e-5)) == "2.5e-05"
  assert report.fmt(np.int64(7)) == "7" and report.fmt(float("inf")) == "n/a"
  assert report.fmt("x") == "x" and report.fmt(True) == "True"


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
  """A run folder with metrics.csv and measures.csv holding planted trajectories."""
  d = tmp_path_factory.mktemp("synthetic_run")
  cfg = SweepConfig(ops=("add", "sub"), seeds=(42, 43), weight_decays=(0.0, 1.0),
                    steps=int(STEPS[-1]), model="tiny", p=23, batch_size=64)
  runio.write_config(d, cfg, ["cpu:0"])
  m, q = synthetic_tables(wds=(0.0, 1.0), leads=PLANTED, noise=0.02)
  write_table(d / "metrics.csv", {**m, "param_norm": 10 - m["test_acc"]})
  write_table(d / "measures.csv", q)
  return d


def write_table(path, cols):
  n = len(cols["run"])
  runio.write_csv(path, [{k: v[i] for k, v in cols.items()} for i in range(n)])


def test_report_of_a_synthetic_run_folder(synthetic_run):
  paths = report.build_report(synthetic_run, write=lambda s: None)
  md = paths["md"].read_text()
  for png in re.findall(r"!\[Figure \d+\]\(([^)]+)\)", md):
    assert (synthetic_run / "report" / png).stat().st_size > 5000
    assert (synthetic_run / "report" / png).with_suffix(".pdf").is_file()
  assert "Not measured: the causal stage did not run" in md
  html = paths["html"].read_text()
  assert html.count("data:image/png;base64,") == md.count("![Figure")
  assert 'src="http' not in html and "<link" not in html  # self-contained
  lead = runio.read_csv(paths["lead_summary"])
  by = {(o, w, ms, me): v for o, w, ms, me, v in zip(lead["op"], lead["weight_decay"],
        lead["measure"], lead["method"], lead["verdict"])}
  for op in ("add", "sub"):
    assert by[op, 1.0, "bdm/2d/total", "half"] == "before"
    assert by[op, 1.0, "fourier/embed_gini", "half"] == "after"
    assert by[op, 0.0, "bdm/2d/total", "half"] == "n/a"
  status = runio.read_csv(paths["reproduction_status"])
  st = dict(zip(status["claim"], status["status"]))
  assert st["BDM, 2-D binary 4x4 (Gray bit-planes) falls through grokking"] == "agrees"
  assert st["Fourier Gini of the embedding rises through grokking"] == "differs"
  assert st["parameter L2 norm falls through grokking"] == "agrees"
  assert st[report._grokking_claim([])["claim"]] == "agrees"
  grok = runio.read_csv(paths["grokking"])
  wd1 = grok["weight_decay"] == 1.0
  assert np.isfinite(grok["gen_step"][wd1]).all() and np.isnan(grok["gen_step"][~wd1]).all()
  assert "**Moved before test accuracy**" in md and "`bdm/2d/total`" in md
  corr = runio.read_csv(paths["correlations"])
  assert np.isfinite(corr["spearman_mean"][corr["weight_decay"] == 1.0]).all()
