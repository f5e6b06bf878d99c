"""The report of a synthetic run folder with planted leads, with and without plan.json."""

import re

import numpy as np
import pytest

from grokjax import analysis, plan, report, runio
from grokjax.config import SweepConfig
from grokjax.report import claims
from tests.test_analysis import STEPS, synthetic_tables

# measures.csv columns: BDM falls 0.3 decades before test accuracy, the Fourier Gini
# (planted falling, the paper says it rises) 0.25 decades after.
PLANTED = (("bdm/2d/total", 0.3), ("fourier/embed_gini", -0.25))


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
  assert st[claims._grokking_claim([])["claim"]] == "agrees"
  grok = runio.read_csv(paths["grokking"])
  wd1 = grok["weight_decay"] == 1.0
  assert np.isfinite(grok["gen_step"][wd1]).all() and np.isnan(grok["gen_step"][~wd1]).all()
  assert "**Moved before test accuracy**" in md and "`bdm/2d/total`" in md
  corr = runio.read_csv(paths["correlations"])
  assert np.isfinite(corr["spearman_mean"][corr["weight_decay"] == 1.0]).all()


def test_the_plan_comes_from_plan_json(synthetic_run):
  (synthetic_run / plan.PLAN_FILE).unlink(missing_ok=True)
  md = report.build_report(synthetic_run, write=lambda s: None)["md"].read_text()
  assert "Table `plan`" not in md and "geometry lens on ? fixed examples" in md
  tiny = plan.PLANS["tiny"]
  plan.save(synthetic_run, tiny)
  try:
    paths = report.build_report(synthetic_run, write=lambda s: None)
  finally:
    (synthetic_run / plan.PLAN_FILE).unlink()
  md = paths["md"].read_text()
  assert f"geometry lens on {tiny.n_examples} fixed examples, GC method {tiny.gc_method}" in md
  t = runio.read_csv(paths["plan"])
  rows = dict(zip(t["setting"].tolist(), t["value"].tolist()))
  assert rows["invariance_samplers"] == "('sgld',)" and rows["llc_step_size"] == "4e-06"
  assert rows["surrogate"] == str(tiny.surrogate) and len(rows) == len(plan.to_dict(tiny))


def test_the_survival_section_is_the_survival_table(synthetic_run):
  paths = report.build_report(synthetic_run, write=lambda s: None)
  md = paths["md"].read_text()
  assert "## Grok time as survival data" in md
  assert (synthetic_run / "report" / "figures" / "fig1_survival.png").is_file()
  got = runio.read_csv(paths["survival"])
  want = analysis.survival_table(runio.read_csv(synthetic_run / "metrics.csv"))
  assert len(got["op"]) == len(want) == 4
  for i, row in enumerate(want):
    for k, v in row.items():
      if isinstance(v, str):
        assert got[k][i] == v
      else:
        np.testing.assert_allclose(float(got[k][i]), float(v), equal_nan=True)
  wd0 = [r for r in want if r["weight_decay"] == 0.0]
  assert all(r["events"] == 0 and r["fraction_grokked"] == 0.0 for r in wd0)
