"""The LLC by phase label in the report: pooled intervals and the memorised vs end / late claim."""

import numpy as np
import pytest

from grokjax.analysis import llc_phases
from grokjax.report import claims

RUN = {"op": "sub", "lr": 1e-3, "train_frac": 0.5}


def planted(values, ok=None):
  """llc.csv-like rows: {(run, seed, wd): [(step, phase, llc_mean, llc_std)]}, 2 chains each."""
  cols = {k: [] for k in ("run", "seed", "weight_decay", "step", "phase", "llc_mean", "llc_std")}
  for (run, seed, wd), rows in values.items():
    for step, phase, m, s in rows:
      for k, v in zip(cols, (run, seed, wd, step, phase, m, s)):
        cols[k].append(v)
  n = len(cols["run"])
  t = {k: np.asarray(v, object if k == "phase" else None) for k, v in cols.items()}
  t.update({k: np.asarray([v] * n, object if k == "op" else None) for k, v in RUN.items()})
  t["num_chains"], t["diverged"] = np.full(n, 2), np.zeros(n, int)
  t["diag_ok"] = np.asarray(["True"] * n if ok is None else ok, object)
  return t


GROK = [(0, "init", 1.0, 0.5), (400, "memorised", 100.0, 2.0), (600, "onset+middle", 70.0, 2.0),
        (700, "end", 40.0, 2.0), (900, "late", 30.0, 2.0)]


def test_the_phase_table_pools_chains_and_seeds():
  llc = planted({(0, 42, 1.0): GROK, (1, 101, 1.0): [(s, p, m + 10, sd) for s, p, m, sd in GROK]})
  rows = {r["phase"]: r for r in llc_phases.phase_summary(llc, {})}
  assert list(rows) == ["init", "memorised", "onset", "middle", "end", "late"]
  mem = rows["memorised"]
  assert mem["llc_mean"] == pytest.approx(105.0) and mem["chains"] == 4 and mem["seeds"] == 2
  sd = np.sqrt((2 * 4.0 + 2 * 2 * 25.0) / 3)  # chain spread and the seeds' 100 vs 110
  assert mem["ci95_hi"] - mem["llc_mean"] == pytest.approx(1.96 * sd / 2)
  assert rows["onset"]["llc_mean"] == rows["middle"]["llc_mean"] == pytest.approx(75.0)
  failed = np.asarray(llc["step"]) == 400  # both memorised estimates
  mem = {r["phase"]: r for r in llc_phases.phase_summary(llc, {}, failed)}["memorised"]
  assert mem["estimates"] == 0 and mem["left_out"] == 2 and np.isnan(mem["llc_mean"])
  assert mem["all_llc_mean"] == pytest.approx(105.0)


def claim(llc, metrics=None):
  t = {"metrics": metrics or {}, "llc": llc}
  return claims._llc_claim(t, "LLC falls through grokking")


def test_the_claim_compares_memorised_with_end_and_late_in_every_grokked_run():
  never = [(0, "init", 1.0, 0.5), (500, "memorised", 50.0, 1.0), (900, "late", 5.0, 1.0)]
  llc = planted({(0, 42, 1.0): GROK, (1, 101, 1.0): GROK, (2, 42, 0.0): never})
  row = claim(llc)
  assert row["status"] == "agrees" and "fell in 2/2 grokked runs (2 beyond" in row["measured"]
  assert "s42 100 -> 40 / 30" in row["measured"]  # the wd-0 run is no grokked run
  rising = [(s, p, 200.0 if p == "late" else m, sd) for s, p, m, sd in GROK]
  mixed = claim(planted({(0, 42, 1.0): GROK, (1, 101, 1.0): rising}))
  assert mixed["status"] == "mixed" and "fell in 1/2" in mixed["measured"]


def test_the_claim_leaves_out_estimates_that_failed_their_diagnostics():
  rising = [(s, p, 200.0 if p == "late" else m, sd) for s, p, m, sd in GROK]
  ok = ["True", "True", "True", "True", "False"]  # the rising late estimate failed
  row = claim(planted({(0, 42, 1.0): rising}, ok=ok))
  assert row["status"] == "agrees" and "1 of 5 LLC estimates left out" in row["measured"]
  no_mem = ["True", "False", "True", "True", "True"]
  row = claim(planted({(0, 42, 1.0): GROK}, ok=no_mem))
  assert row["status"] == "not measured" and "1 grokked runs, none" in row["measured"]
