"""The analysis and the claims on planted 100k-step runs: slingshot spikes after grokking,
re-grokking after a collapse, late grokking without weight decay, a weight norm decaying
over decades, and checkpoints at the paper preset's log-spaced and triggered steps."""

import numpy as np
import pytest

from grokjax import analysis
from grokjax.report import claims
from tests.analysis_planted import long_tables

SPIKES = ((30_000, 2), (70_000, 3), (100_000, 1))  # the last: the final checkpoint
RUNS = (  # add, wd 1: slingshots, re-grokking; wd 0: grokking at ~60k, never
    ({"run": 0, "op": "add", "seed": 42, "weight_decay": 1.0}, dict(grok=2000, spikes=SPIKES)),
    ({"run": 1, "op": "add", "seed": 43, "weight_decay": 1.0},
     dict(grok=2400, collapse=(10_000, 15_000))),
    ({"run": 2, "op": "add", "seed": 42, "weight_decay": 0.0},
     dict(grok=45_000, width=0.03, noise=0.01, seed=1)),
    ({"run": 3, "op": "add", "seed": 43, "weight_decay": 0.0}, dict(grok=None, noise=0.01, seed=2)),
)
# the same runs without their spikes and collapse: what the first grokking alone gives
SMOOTH = tuple((f, {k: v for k, v in kw.items() if k not in ("spikes", "collapse")})
               for f, kw in RUNS)


@pytest.fixture(scope="module")
def sweeps():
  return long_tables(RUNS), long_tables(SMOOTH)


def by_run(rows, **match):
  return {r["run"]: r for r in rows if all(r[k] == v for k, v in match.items())}


def test_the_planted_sweep_looks_like_the_paper_preset(sweeps):
  (m, q), _ = sweeps
  steps = m["step"][m["run"] == 0]
  assert steps.size > 1000 and steps[-1] == 100_000
  saved = q["step"][q["run"] == 0]
  assert 80 < saved.size < 200 and 100_000 in saved
  gaps = np.diff(np.log10(1 + saved[saved > 1000]))
  assert gaps.max() > 50 * gaps.min()  # irregular: dense in spikes, log-spaced between
  for at, _ in SPIKES[:2]:  # the trigger saved inside each spike (log spacing: ~4k steps)
    assert np.sum((saved >= at) & (saved < at + 400)) >= 2


def test_t_gen_and_onsets_are_the_first_grokking(sweeps):
  (m, _), (smooth, _) = sweeps
  spiky, plain = by_run(analysis.grokking_table(m)), by_run(analysis.grokking_table(smooth))
  for run, g in ((0, 2000), (1, 2400), (2, 45_000)):
    assert spiky[run]["gen_step"] == pytest.approx(g, rel=0.01)
    for k in ("train_acc_099_step", "test_acc_099_step", "gen_onset_step",
              "test_loss_onset_step"):
      assert spiky[run][k] == plain[run][k], (run, k)
  assert spiky[0]["final_test_acc"] == 0.3  # the last checkpoint sits in a spike
  assert 400 <= spiky[0]["train_acc_099_step"] <= 450
  assert 1000 < spiky[0]["gen_onset_step"] < 2000
  assert np.isnan(spiky[3]["gen_step"]) and np.isnan(spiky[3]["gen_onset_step"])


def test_leads_are_not_thrown_by_later_spikes_or_a_collapse(sweeps):
  (m, q), (sm, sq) = sweeps
  tables = lambda mm, qq: {"early": qq, "param_norm": mm, "test_loss": mm}
  spiky = analysis.transition_table(m, tables(m, q))
  plain = analysis.transition_table(sm, tables(sm, sq))
  for method in analysis.METHODS:
    for measure in ("early", "param_norm", "test_loss"):
      a = by_run(spiky, method=method, measure=measure)
      b = by_run(plain, method=method, measure=measure)
      for run in (0, 1, 2):
        # within 0.03 decades (half a sample of the log-spaced checkpoints) of the smooth run
        assert a[run]["lead_decades"] == pytest.approx(b[run]["lead_decades"], abs=0.03), (
            method, measure, run)
  for method in analysis.MIDPOINTS:
    early = by_run(spiky, method=method, measure="early")
    for run in (0, 1, 2):  # planted 0.3 decades before t_gen
      assert early[run]["lead_decades"] == pytest.approx(0.3, abs=0.02)
      assert early[run]["order"] == "before"
  summary = {(r["weight_decay"], r["measure"], r["method"]): r
             for r in analysis.lead_summary(spiky)}
  assert all(summary[1.0, "early", m]["verdict"] == "before" for m in analysis.METHODS)
  assert summary[1.0, "test_loss", "onset"]["verdict"] == "with"


def test_a_smooth_norm_decay_is_timed_where_it_is_halfway(sweeps):
  (m, _), _ = sweeps
  t = analysis.transition_table(m, {"param_norm": m}, methods=("half_all",))
  planted = {0: 6000, 1: 7200}  # 60 -> 20 over ~2 decades centred at 3 t_gen
  for run, centre in planted.items():
    row = by_run(t)[run]
    # the half level is crossed a little before the centre: at 100k the decay is not done
    assert centre / 1.5 < row["transition_step"] < centre
    assert row["change"] < -30 and row["order"] == "after"


def test_grok_time_of_late_and_never_grokking_runs(sweeps):
  (m, _), _ = sweeps
  times = by_run(analysis.grok_times(m))
  steps = m["step"][m["run"] == 2]
  late = steps[np.flatnonzero(m["test_acc"][m["run"] == 2] >= 0.99)[0]]
  assert 55_000 < late < 65_000
  assert times[2]["grok_step"] == late and times[2]["grokked"]
  assert times[3]["grok_step"] == 100_000 and not times[3]["grokked"]  # censored at the budget
  assert times[0]["grok_step"] < 5000 and times[1]["grok_step"] < 5000  # not a recovery
  table = {r["weight_decay"]: r for r in analysis.survival_table(m)}
  assert (table[0.0]["events"], table[0.0]["censored"]) == (1, 1)
  assert table[0.0]["median"] == late and table[0.0]["fraction_grokked"] == 0.5
  assert table[0.0]["budget"] == 100_000 and table[1.0]["fraction_grokked"] == 1.0


def test_plateau_and_after_leave_out_spikes_and_the_collapse(sweeps):
  (m, q), _ = sweeps
  rows = by_run(analysis.grokking_change(m, q, "early"))
  for run in (0, 1, 2):
    steps, values = analysis.trajectory(q, run, "early")
    train = analysis.at_steps(m, run, "train_acc", steps)
    test = analysis.at_steps(m, run, "test_acc", steps)
    first = np.argmax(test >= 0.5)
    post = (test >= 0.99) & (train >= 0.99)
    assert rows[run]["n_plateau"] == np.sum((np.arange(steps.size) < first) & (train >= 0.99))
    assert rows[run]["n_after"] == post.sum()
    assert rows[run]["after"] == pytest.approx(2.0, abs=1e-3)
    assert np.all(values[post] < 2.01)  # no row thrown back by a spike or the collapse
  steps, _ = analysis.trajectory(q, 0, "early")
  test = analysis.at_steps(m, 0, "test_acc", steps)
  train = analysis.at_steps(m, 0, "train_acc", steps)
  assert test[-1] == 0.3  # the final checkpoint is in a spike and is in neither median
  assert np.sum((test >= 0.99) & (train < 0.99)) >= 2  # saved on the way back from a spike


def test_claims_on_the_long_sweep(sweeps):
  (m, q), _ = sweeps
  tables = {"metrics": m, "measures": {**q, "bdm/2d/total": q["early"]}, "llc": None,
            "causal_summary": None}
  res = claims.analyse(tables)
  rows = {r["measure"]: r for r in claims.claim_rows(tables, res)}
  grok = rows["test_acc"]
  assert grok["status"] == "agrees"  # wd 0 groks once, 10x later than wd 1: "far later"
  assert "wd 0: 1/2 runs reach test acc 0.99" in grok["measured"]
  bdm = rows["bdm/2d/total"]
  assert bdm["status"] == "agrees" and "in 3/3 runs as claimed" in bdm["measured"]
  changes = by_run(res.changes, measure="bdm/2d/total")
  rel = np.median([c["rel_change"] for c in changes.values()])
  assert f"median {100 * rel:+.1f}% plateau -> after" in bdm["measured"]
  assert all(c["after"] == pytest.approx(2.0, abs=1e-3) for c in changes.values())


def test_wd0_grokking_a_decade_later_agrees_with_the_claim():
  from tests.test_report_claims import grok_rows

  status = lambda by_wd: claims._grokking_claim(grok_rows(by_wd))["status"]
  assert status({0.0: [12_000, None], 1.0: [900, 1200]}) == "agrees"  # 10x the last wd-1 run
  assert status({0.0: [11_000, None], 1.0: [900, 1200]}) == "mixed"
  assert status({0.0: [60_000], 1.0: [900, None]}) == "mixed"  # a wd-1 run did not grok
