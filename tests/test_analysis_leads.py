"""Lead times, verdicts, summaries and correlations on planted tidy tables."""

import numpy as np
import pytest
from scipy import stats

from grokjax import analysis
from tests.analysis_planted import STEPS, synthetic_tables


def test_ranks_and_spearman_match_scipy():
  x = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 2.0])
  y = np.array([1.0, 0.0, 4.0, 2.0, 9.0, 3.0])
  np.testing.assert_allclose(analysis.ranks(x), stats.rankdata(x))
  assert analysis.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
  assert analysis.spearman(STEPS, -np.exp(STEPS / 1e3)) == pytest.approx(-1.0)
  assert np.isnan(analysis.spearman(np.ones(5), np.arange(5)))


def test_bootstrap_ci():
  assert analysis.bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
  assert all(np.isnan(analysis.bootstrap_ci([1.0])))
  lo, hi = analysis.bootstrap_ci([1.0, 3.0], key=1)
  assert lo == 1.0 and hi == 3.0  # two seeds: the interval spans both
  x = np.random.default_rng(0).normal(10, 1, 50)
  lo, hi = analysis.bootstrap_ci(x)
  assert lo < x.mean() < hi and hi - lo == pytest.approx(2 * 1.96 / np.sqrt(50), rel=0.2)
  assert analysis.bootstrap_ci(x, key=3) == analysis.bootstrap_ci(x, key=3)


@pytest.mark.parametrize("bracket,gen,expected", [
    ((700, 800), (900, 950), "before"),
    ((700, 900), (900, 950), "before"),   # crossed by step 900, where test acc was < 0.5
    ((800, 1000), (900, 950), "with"),
    ((950, 1000), (900, 950), "after"),
    ((900, 900), (900, 900), "with"),
    ((np.nan, np.nan), (900, 950), ""),
])
def test_order_from_sampled_brackets(bracket, gen, expected):
  assert analysis.order_of(*bracket, *gen) == expected


def test_grokking_table():
  m, _ = synthetic_tables()
  rows = analysis.grokking_table(m)
  assert [r["op"] for r in rows] == ["add", "add", "sub", "sub"]
  for r, g in zip(rows, [1000, 1400, 1500, 2100]):
    assert r["gen_step"] == pytest.approx(g, rel=0.02)
    assert r["train_acc_099_step"] < r["test_acc_099_step"]
    assert r["final_test_acc"] > 0.99 and r["final_step"] == STEPS[-1]
    # 0.99 of a logistic of width 0.08 decades lies log10(99) * 0.08 decades past its centre
    assert r["test_acc_099_step"] >= g * 10 ** (0.08 * np.log10(99)) * 0.97


def test_planted_leads_are_recovered_with_verdicts():
  m, q = synthetic_tables()
  tables = {name: q for name in ("early", "late", "flat")}
  rows = analysis.transition_table(m, {**tables, "test_loss": m})
  summary = analysis.lead_summary(rows)
  by = {(r["op"], r["measure"], r["method"]): r for r in summary}
  for op in ("add", "sub"):
    for method in analysis.MIDPOINTS:
      early, late = by[op, "early", method], by[op, "late", method]
      assert early["lead_decades_mean"] == pytest.approx(0.3, abs=0.03)
      assert late["lead_decades_mean"] == pytest.approx(-0.25, abs=0.03)
      assert early["verdict"] == "before" and late["verdict"] == "after"
      assert early["lead_ci_lo"] <= early["lead_mean"] <= early["lead_ci_hi"]
      assert early["lead_ci_lo"] > 0 and late["lead_ci_hi"] < 0
      assert by[op, "flat", method]["n_timed"] == 0
      assert by[op, "flat", method]["verdict"] == "n/a"
      # test loss moves exactly with test accuracy
      assert abs(by[op, "test_loss", method]["lead_decades_mean"]) < 0.03
      assert by[op, "test_loss", method]["verdict"] == "with"
    assert by[op, "early", "half"]["spearman_mean"] < -0.8  # falls as accuracy rises
  ranked = [name for name, *_ in analysis.ranking(summary)]
  assert ranked[0] == "early" and ranked[-1] == "late"


def test_runs_that_never_generalise_have_no_lead():
  m, q = synthetic_tables(wds=(0.0, 1.0), ops=("add",))
  rows = analysis.transition_table(m, {"early": q}, methods=("half",))
  wd0 = [r for r in rows if r["weight_decay"] == 0.0]
  assert len(wd0) == 2 and all(np.isnan(r["lead_steps"]) and r["order"] == "" for r in wd0)
  summary = analysis.lead_summary(rows)
  assert {r["weight_decay"]: r["verdict"] for r in summary} == {0.0: "n/a", 1.0: "before"}


def test_correlation_table():
  m, q = synthetic_tables()
  rows = analysis.transition_table(m, {"early": q, "flat": q})
  corr = {(r["op"], r["measure"]): r for r in analysis.correlation_table(rows)}
  assert corr["add", "early"]["spearman_max"] < -0.8 and corr["add", "early"]["n_runs"] == 2
  assert abs(corr["add", "flat"]["spearman_mean"]) < 0.6


def test_verdict():
  assert analysis.verdict(["before", "before"]) == "before"
  assert analysis.verdict(["after", "after", ""]) == "after"
  assert analysis.verdict(["with", "with"]) == "with"
  assert analysis.verdict(["before", "after"]) == "mixed"
  assert analysis.verdict(["before", ""]) == "n/a"  # one run with both steps is not enough


def test_grokking_change_compares_plateau_with_after():
  m, q = synthetic_tables(ops=("add",))
  rows = analysis.grokking_change(m, q, "late")
  assert len(rows) == 2
  for r in rows:  # planted: 5 on the plateau, 2 long after grokking
    assert r["plateau"] == pytest.approx(5.0, abs=0.01)
    assert r["after"] == pytest.approx(2.0, abs=0.05)
    assert r["rel_change"] == pytest.approx(-0.6, abs=0.01)
  early = analysis.grokking_change(m, q, "early")  # already moving on the plateau
  assert all(4.0 < r["plateau"] < 4.9 for r in early)
  m, q = synthetic_tables(ops=("add",), wds=(0.0,))
  assert analysis.grokking_change(m, q, "early") == []  # never generalised


def test_grokking_change_ignores_a_loss_spike_after_grokking():
  m, q = synthetic_tables(ops=("add",))
  spike = q["step"].max()  # the last checkpoint: a slingshot, train high and test low again
  at = m["step"] == spike
  m = {**m, "test_acc": np.where(at, 0.3, m["test_acc"]),
       "train_acc": np.where(at, 1.0, m["train_acc"])}
  q = {**q, "late": np.where(q["step"] == spike, 50.0, q["late"])}  # a wild value there
  rows = analysis.grokking_change(m, q, "late")
  assert len(rows) == 2
  for r in rows:  # the spike is neither plateau (it comes after t_gen) nor after (test < .99)
    assert r["plateau"] == pytest.approx(5.0, abs=0.01)
    assert r["after"] == pytest.approx(2.0, abs=0.05)


# ---------------------------------------------------------------- onset leads

def step_tables(gen_at=(40, 41), leads=(("early", 6), ("late", -4)), ops=("add", "sub")):
  """metrics and measures on steps 10 i (i < 70): train accuracy 1 from step 100, test
  accuracy jumping from 0.02 to 1 at index gen_at[seed index]; measure `name` jumping
  from 5 to 2 `lead` samples before (positive) or after it; test loss with accuracy."""
  steps = 10 * np.arange(70)
  m, q = {}, {}
  run = 0
  for op in ops:
    for s_i, g in enumerate(gen_at):
      info = {"run": run, "op": op, "seed": 42 + s_i, "weight_decay": 1.0, "lr": 1e-3,
              "train_frac": 0.5}
      jump = lambda at, lo, hi: np.where(np.arange(steps.size) >= at, hi, lo)
      cols = {"train_acc": jump(10, 0.3, 1.0), "test_acc": jump(g, 0.02, 1.0),
              "test_loss": jump(g, 4.0, 0.1)}
      mcols = {name: jump(g - lead, 5.0, 2.0) for name, lead in leads}
      for d, c in ((m, cols), (q, mcols)):
        for k, v in {**info, "step": steps, **c}.items():
          d.setdefault(k, []).append(np.broadcast_to(v, steps.shape))
      run += 1
  cat = lambda d: {k: np.concatenate(v) if not isinstance(v[0][0], str) else
                   np.concatenate(v).astype(object) for k, v in d.items()}
  return cat(m), cat(q)


def test_onset_leads_positive_negative_and_zero():
  m, q = step_tables()
  rows = analysis.transition_table(m, {"early": q, "late": q, "test_loss": m},
                                   methods=("onset", "half"))
  on = {(r["op"], r["seed"], r["measure"]): r for r in rows if r["method"] == "onset"}
  for op in ("add", "sub"):
    for seed, g in ((42, 40), (43, 41)):
      early, late = on[op, seed, "early"], on[op, seed, "late"]
      assert early["gen_onset_step"] == early["reference_step"] == 10 * g
      assert early["transition_step"] == 10 * (g - 6) and early["lead_steps"] == 60
      assert late["transition_step"] == 10 * (g + 4) and late["lead_steps"] == -40
      assert early["lead_decades"] == pytest.approx(np.log10((1 + 10 * g) / (1 + 10 * (g - 6))))
      assert early["order"] == "before" and late["order"] == "after"
      tl = on[op, seed, "test_loss"]
      assert tl["lead_steps"] == 0 and tl["order"] == "with"
  half = [r for r in rows if r["method"] == "half"]
  assert all(r["reference_step"] == r["gen_step"] for r in half)  # midpoints: against t_gen
  summary = analysis.lead_summary(rows)
  by = {(r["op"], r["measure"], r["method"]): r for r in summary}
  for op in ("add", "sub"):
    early, late = by[op, "early", "onset"], by[op, "late", "onset"]
    assert early["lead_mean"] == 60 and early["verdict"] == "before"
    assert late["lead_mean"] == -40 and late["verdict"] == "after"
    assert by[op, "test_loss", "onset"]["verdict"] == "with"
    assert by[op, "early", "onset"]["lead_ci_lo"] == by[op, "early", "onset"]["lead_ci_hi"] == 60
  ranked = [name for name, *_ in analysis.ranking(summary, method="onset")]
  assert ranked == ["early", "test_loss", "late"]


def test_onset_and_midpoint_leads_differ_when_widths_differ():
  # test accuracy: logistic of width 0.08 decades at g; the measure: a wider one (0.12)
  # at g / 1.5. Midpoint lead log10(1.5) = 0.18 decades; the 5 % points lie w ln 19
  # before the centres, so the onset lead is 0.18 + (0.12 - 0.08) ln 19 = 0.29 decades,
  # to within the sampling (0.065 decades between samples; onsets are sampled steps).
  m, _ = synthetic_tables(ops=("add",))
  g = np.where(m["run"] == 0, 1000.0, 1400.0)
  u = np.log10(1.0 + m["step"])
  q = {**m, "wide": 5.0 - 3.0 / (1.0 + np.exp(-(u - np.log10(1 + g / 1.5)) / 0.12))}
  rows = analysis.transition_table(m, {"wide": q}, methods=("half", "onset"))
  by = {(r["seed"], r["method"]): r for r in rows}
  for seed in (42, 43):
    half, onset = by[seed, "half"]["lead_decades"], by[seed, "onset"]["lead_decades"]
    assert half == pytest.approx(np.log10(1.5), abs=0.02)
    assert onset == pytest.approx(np.log10(1.5) + 0.04 * np.log(19), abs=0.065)
    assert onset > half + 0.05
    assert by[seed, "onset"]["order"] == "before"


def test_grokking_table_has_onsets():
  m, _ = step_tables(ops=("add",))
  rows = analysis.grokking_table(m)
  assert [r["gen_onset_step"] for r in rows] == [400, 410]
  assert [r["test_loss_onset_step"] for r in rows] == [400, 410]
  assert [r["train_acc_099_step"] for r in rows] == [100, 100]
