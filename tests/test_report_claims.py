"""The claims logic and the tables it reads, on hand-made rows with known answers."""

import numpy as np

from grokjax.report import claims, tables


def grok_rows(by_wd):
  """{weight decay: [test_acc_099_step or None per run]} -> grokking_table-like rows."""
  return [{"weight_decay": wd, "test_acc_099_step": np.nan if s is None else float(s)}
          for wd, steps in by_wd.items() for s in steps]


def test_grokking_claim_status():
  status = lambda by_wd: claims._grokking_claim(grok_rows(by_wd))["status"]
  assert status({0.0: [None, None], 1.0: [900, 1200]}) == "agrees"
  assert status({0.0: [None, None], 1.0: [None, None]}) == "differs"
  assert status({0.0: [500, None], 1.0: [900, 1200]}) == "mixed"
  assert status({1.0: [900]}) == "not measured"  # no weight decay 0 to compare with
  measured = claims._grokking_claim(grok_rows({0.0: [None], 1.0: [900, 1200]}))["measured"]
  assert measured == "wd 0: 0/1 runs reach test acc 0.99; wd 1: 2/2 runs reach test acc 0.99 " \
                     "(steps 900-1200)"


def test_coincidence_claim_counts_primary_verdicts():
  leads = [{"method": m, "verdict": v, "measure": x} for m, v, x in (
      ("half", "with", "a"), ("half", "with", "b"), ("half", "before", "c"),
      ("half", "n/a", "d"), ("sigmoid", "before", "a"), ("half", "after", "test_loss"))]
  row = claims._coincidence_claim(leads)
  assert row["status"] == "agrees"  # 2 of 3 timed verdicts say 'with'
  assert row["measured"] == "3 measure x group verdicts: 1 before, 2 with, 0 after, 0 mixed"
  leads[1]["verdict"] = "after"
  assert claims._coincidence_claim(leads)["status"] == "differs"


def test_causal_concentration_is_the_top_heads_share():
  effect = np.array([1.0, -3.0, 0.0, 0.0, 2.0, 2.0])  # run 0: |1|,|-3| ; run 1 at two steps
  causal = {"run": np.array([0, 0, 1, 1, 1, 1]), "step": np.array([5, 5, 5, 5, 9, 9]),
            "op": np.array(["add"] * 6, object), "seed": np.array([0, 0, 1, 1, 1, 1]),
            "weight_decay": np.ones(6), "lr": np.ones(6), "train_frac": np.ones(6),
            "logit_diff": effect}
  out = tables.causal_concentration(causal)
  np.testing.assert_array_equal(out["run"], [0, 1, 1])
  np.testing.assert_allclose(out["causal/top_head_share"], [0.75, np.nan, 0.5])
  np.testing.assert_allclose(out["causal/max_abs_effect"], [3.0, 0.0, 2.0])


def test_every_measure_has_a_label_and_a_known_source():
  assert set(m[0] for m in tables.MEASURES) == {"metrics", "measures", "llc", "causal"}
  assert len(tables.labels()) == len(tables.MEASURES)
  assert all(m[3] in (-1, 0, 1) for m in tables.MEASURES)


def planted_llc(q, failed_after: int):
  """llc.csv-like columns falling with measure 'early'; run 0's rows at steps >= failed_after
  rise to 1e4 and, flagged or not, fail their diagnostics."""
  llc = {k: q[k] for k in ("run", "op", "seed", "weight_decay", "lr", "train_frac", "step")}
  bad = (q["run"] == 0) & (q["step"] >= failed_after)
  llc["llc_mean"] = np.where(bad, 1e4, 10 * q["early"])
  llc["diag_ok"] = np.where(bad, "False", "True").astype(object)
  llc["diag_reasons"] = np.where(bad, "chains disagree (split-R̂ too large)", "ok").astype(object)
  return llc, int(bad.sum())


def test_the_llc_claim_leaves_out_estimates_that_failed_their_diagnostics():
  from grokjax.report import theory
  from tests.test_analysis import synthetic_tables

  m, q = synthetic_tables(wds=(1.0,))
  llc, n_bad = planted_llc(q, 5000)
  assert n_bad >= 3
  t = {"metrics": m, "measures": None, "llc": llc, "causal_summary": None}
  row = lambda tabs: next(r for r in claims.claim_rows(tabs, claims.analyse(tabs))
                          if r["measure"] == "llc_mean")
  kept = row(t)
  assert kept["status"] == "agrees"  # every run falls once the failed estimates are out
  assert f"{n_bad} of {len(llc['llc_mean'])} LLC estimates left out" in kept["measured"]
  assert f"chains disagree (split-R̂ too large) x{n_bad}" in kept["measured"]
  # the same values marked as passing: run 0 rises, and the claim is mixed
  passing = {**llc, "diag_ok": np.full(len(llc["llc_mean"]), "True", object)}
  assert row({**t, "llc": passing})["status"] == "mixed"
  assert "left out" not in row({**t, "llc": passing})["measured"]
  note = theory._diagnostics_note(llc)
  assert f"{n_bad} of {len(llc['llc_mean'])} LLC estimates left out" in note and "hollow" in note
  assert "passed" in theory._diagnostics_note(passing)
  assert "not recorded" in theory._diagnostics_note({"llc_mean": llc["llc_mean"]})
