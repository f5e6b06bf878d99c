"""Transition detection, lead times and correlations on planted trajectories."""

import numpy as np
import pytest
from scipy import stats

from grokjax import analysis

STEPS = np.unique(np.r_[0, np.round(np.geomspace(1, 30000, 70))]).astype(np.int64)


def logistic(steps, centre, width=0.1, lo=0.0, hi=1.0):
  u = np.log10(1.0 + steps)
  return lo + (hi - lo) / (1.0 + np.exp(-(u - np.log10(1.0 + centre)) / width))


def synthetic_tables(grok=(1000, 1400), leads=(("early", 0.3), ("late", -0.25)),
                     ops=("add", "sub"), wds=(1.0,), noise=0.0, seed=0):
  """metrics.csv- and measures.csv-like tidy tables with planted transitions.

  Test accuracy crosses 0.5 at grok[seed index] * op factor; measure `name` makes a
  falling logistic step `lead` decades before (positive) or after that step.
  """
  rng = np.random.default_rng(seed)
  m, q = {}, {}
  run = 0
  for op_i, op in enumerate(ops):
    for wd in wds:
      for s_i, g in enumerate(grok):
        g = g * (1 + 0.5 * op_i) if wd > 0 else 1e9
        fit = logistic(STEPS, 40.0, 0.1)
        rows = {"run": run, "op": op, "seed": 42 + s_i, "weight_decay": wd, "lr": 1e-3,
                "train_frac": 0.5}
        cols = {"train_acc": fit, "test_acc": logistic(STEPS, g, 0.08),
                "train_loss": 1 - fit, "test_loss": 2 - logistic(STEPS, g, 0.08)}
        for k, v in {**rows, "step": STEPS, **cols}.items():
          m.setdefault(k, []).append(np.broadcast_to(v, STEPS.shape))
        ck = STEPS[::3]
        u_g = np.log10(1 + g)
        mcols = {name: logistic(ck, 10 ** (u_g - lead) - 1, 0.1, 5.0, 2.0)
                 + noise * rng.normal(size=ck.size) for name, lead in leads}
        mcols["flat"] = 3.0 + 0.01 * rng.normal(size=ck.size)
        for k, v in {**rows, "step": ck, **mcols}.items():
          q.setdefault(k, []).append(np.broadcast_to(v, ck.shape))
        run += 1
  cat = lambda d: {k: np.concatenate(v) if not isinstance(v[0][0], str) else
                   np.concatenate(v).astype(object) for k, v in d.items()}
  return cat(m), cat(q)


def test_generalisation_step_interpolates_on_log_steps():
  steps = np.array([0, 10, 100, 1000, 10000])
  acc = np.array([0.0, 0.0, 0.2, 0.8, 1.0])
  assert analysis.generalisation_step(steps, acc) == pytest.approx(np.sqrt(101 * 1001) - 1)
  assert np.isnan(analysis.generalisation_step(steps, np.full(5, 0.3)))
  assert analysis.generalisation_step(steps, np.full(5, 0.9)) == 0.0
  # first crossing is kept even if accuracy collapses afterwards
  acc = np.array([0.0, 0.6, 0.1, 0.1, 1.0])
  assert analysis.generalisation_step(steps, acc) < 10


@pytest.mark.parametrize("method", analysis.METHODS)
@pytest.mark.parametrize("lo,hi", [(5.0, 1.0), (0.2, 0.9)])
def test_transition_finds_planted_logistic_midpoint(method, lo, hi):
  v = logistic(STEPS, 1500.0, 0.1, lo, hi)
  t = analysis.transition(STEPS, v, method=method)
  assert t["step"] == pytest.approx(1500.0, rel=0.03)
  assert t["change"] == pytest.approx(hi - lo, rel=0.02)
  assert t["lo"] <= t["step"] <= t["hi"]


def test_half_change_reads_net_change_of_non_monotone_trajectory():
  # rises from 10 to 14 around step 30, then falls to 6 around step 2000: net change -4,
  # half level 8 is reached on the way down, between the two steps' midpoints.
  v = 10 + 4 * logistic(STEPS, 30.0) - 8 * logistic(STEPS, 2000.0)
  step = analysis.transition_step(STEPS, v, method="half")
  assert 2000 < step < 2000 * 10 ** 0.15


def test_noise_has_no_transition():
  v = np.random.default_rng(0).normal(size=STEPS.size)
  assert np.isnan(analysis.transition_step(STEPS, v, method="half"))
  assert np.isnan(analysis.transition_step(STEPS, v, method="sigmoid"))
  assert analysis.noise_level(v) == pytest.approx(1.0, rel=0.35)


def test_unknown_method_is_refused():
  with pytest.raises(ValueError, match="unknown transition method"):
    analysis.transition(STEPS, STEPS * 1.0, method="steepest")


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
    for method in analysis.METHODS:
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


def test_windowed_methods_time_the_post_memorisation_change():
  # a large rise while the network memorises (step ~30), then a smaller fall at ~1500
  v = 10 * logistic(STEPS, 30.0) - 2 * logistic(STEPS, 1500.0)
  assert analysis.transition_step(STEPS, v, method="half_all") < 60
  for method in analysis.WINDOWED:
    assert analysis.transition_step(STEPS, v, method=method, start=100) == pytest.approx(
        1500, rel=0.05)
  assert np.isnan(analysis.transition_step(STEPS, v, method="half", start=np.nan))
  assert np.isnan(analysis.transition_step(STEPS, v, method="half", start=STEPS[-2]))
  m, q = synthetic_tables(ops=("add",))
  fits = analysis.fit_steps(m)
  assert all(64 <= f < 130 for f in fits.values())  # 0.99 at step ~64; next sample 119
