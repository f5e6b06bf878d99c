"""The analysis of a run folder's tables and the paper's claims set against it.

`without_runs` drops the rows of diverged runs from the run folder's tables, so that
no analysis or claim counts them. `analyse` runs the numpy-only table analysis
(`grokjax.analysis`) once: grokking
steps, transitions and leads of every measure, their correlations with test
accuracy and their change through grokking. `claim_rows` states each of the paper's
claims next to what this folder measured, with a status (agrees / differs / mixed /
not measured); `lead_sentences` says in words which measures moved before, with or
after test accuracy.

>>> _sign_word(-0.2)
'fell'
"""

from __future__ import annotations

import dataclasses

import numpy as np

from grokjax import analysis
from grokjax.analysis import llc_phases
from grokjax.figures.slt import diag_failed
from grokjax.report.tables import available, measure_tables

@dataclasses.dataclass
class Results:
  grok: list[dict]
  transitions: list[dict]
  leads: list[dict]
  correlations: list[dict]
  changes: list[dict]
  gen_steps: dict[int, float]


def failed_llc(llc: dict | None) -> dict[str, int]:
  """{reasons in words: count} of the llc.csv rows whose diagnostics failed (diag_ok false)."""
  failed = None if llc is None else diag_failed(llc)
  if failed is None:
    return {}
  reasons = llc["diag_reasons"] if "diag_reasons" in llc else np.full(len(failed), "?")
  out: dict[str, int] = {}
  for reason in np.asarray(reasons)[failed]:
    out[str(reason)] = out.get(str(reason), 0) + 1
  return out


def trusted(tables: dict) -> dict:
  """The tables with llc.csv's rows that failed their diagnostics left out (None if all did)."""
  llc = tables.get("llc")
  failed = None if llc is None else diag_failed(llc)
  if failed is None or not failed.any():
    return tables
  kept = {k: np.asarray(v)[~failed] for k, v in llc.items()}
  return {**tables, "llc": kept if (~failed).any() else None}


def without_runs(tables: dict, runs: set[int]) -> dict:
  """The tables without the rows of `runs` (a table left with no row: None; metrics stays).

  surrogate.csv is left as it is: it is its own sweep, whose run indices are not these.
  """
  if not runs:
    return tables
  out = dict(tables)
  for name, t in tables.items():
    if t is None or name == "surrogate" or "run" not in t:
      continue
    keep = ~np.isin(np.asarray(t["run"]), sorted(runs))
    out[name] = {k: np.asarray(v)[keep] for k, v in t.items()}
    if name != "metrics" and not keep.any():
      out[name] = None
  return out


def analyse(tables: dict) -> Results:
  """The analysis of every measure; LLC estimates that failed their diagnostics left out."""
  metrics = tables["metrics"]
  grok = analysis.grokking_table(metrics)
  mt = measure_tables(trusted(tables))
  transitions = analysis.transition_table(metrics, mt)
  changes = [c for col, t in mt.items() for c in analysis.grokking_change(metrics, t, col)]
  return Results(grok, transitions, analysis.lead_summary(transitions),
                 analysis.correlation_table(transitions), changes,
                 {r["run"]: r["gen_step"] for r in grok})


def _sign_word(x: float) -> str:
  return "rose" if x > 0 else "fell" if x < 0 else "did not change"


def claim_rows(tables: dict, res: Results) -> list[dict]:
  """The paper's claims next to what this run folder measured, with a status each."""
  rows = [_grokking_claim(res.grok)]
  for source, col, label, sign in available(tables):
    if sign == 0 or col == "test_loss":
      continue
    ch = [c for c in res.changes if c["measure"] == col]
    claim = f"{label} {'rises' if sign > 0 else 'falls'} through grokking"
    if source == "llc":
      rows.append(_llc_claim(tables, claim))
      continue
    if not ch:
      rows.append({"claim": claim, "measure": col, "measured": "no run generalised with this "
                   "lens measured", "status": "not measured"})
      continue
    agree = sum(np.sign(c["change"]) == sign for c in ch)
    rel = np.median([c["rel_change"] for c in ch])
    status = "agrees" if agree == len(ch) else "differs" if agree == 0 else "mixed"
    runs = ", ".join(f"{c['op']} wd{c['weight_decay']:g} s{c['seed']}" for c in ch)
    rows.append({"claim": claim, "measure": col, "status": status,
                 "measured": f"{_sign_word(rel)} (median {100 * rel:+.1f}% plateau -> after) in "
                             f"{agree}/{len(ch)} runs as claimed ({runs})"})
  rows.append(_coincidence_claim(res.leads))
  return rows


def llc_left_out(tables: dict) -> str:
  """'k of n LLC estimates left out (failed diagnostics: reason x count, ...)', or ''."""
  failed = failed_llc(tables.get("llc"))
  if not failed:
    return ""
  k = sum(failed.values())
  why = "; ".join(f"{reason} x{n}" for reason, n in failed.items())
  n = len(tables["llc"]["llc_mean"])
  return f"{k} of {n} LLC estimates left out (failed diagnostics: {why})"


def _llc_note(tables: dict) -> str:
  text = llc_left_out(tables)
  return f"; {text}" if text else ""


def _llc_claim(tables: dict, claim: str) -> dict:
  """λ̂ on the memorisation plateau against the end of the jump and the last checkpoint, in
  every grokked run, with the estimates that failed their diagnostics left out."""
  llc, note = tables["llc"], _llc_note(tables)
  runs = llc_phases.memorised_vs_late(llc, tables["metrics"], diag_failed(llc))
  done = [r for r in runs if r["compared"]]
  row = {"claim": claim, "measure": "llc_mean"}
  if not done:
    why = (f"{len(runs)} grokked runs, none with a memorised and an end / late estimate that "
           "passed" if runs else "no run with LLC estimates grokked")
    return {**row, "status": "not measured", "measured": why + note}
  fell = sum(r["falls"] for r in done)
  status = "agrees" if fell == len(done) else "differs" if fell == 0 else "mixed"
  each = "; ".join(
      f"{r['op']} wd{r['weight_decay']:g} s{r['seed']} {r['llc_memorised']:.3g} -> "
      f"{r['llc_end']:.3g} / {r['llc_late']:.3g}" for r in done)
  left = len(runs) - len(done)
  return {**row, "status": status, "measured": (
      f"λ̂ memorised -> end / late fell in {fell}/{len(done)} grokked runs "
      f"({sum(r['resolved'] for r in done)} beyond the chains' 95 % interval): {each}"
      + (f"; {left} grokked runs not compared (estimates left out or absent)" if left else "")
      + note)}


def _grokking_claim(grok: list[dict]) -> dict:
  claim = "weight decay 1 groks within the budget; weight decay 0 does not, or far later"
  by_wd: dict[float, list] = {}
  for r in grok:
    by_wd.setdefault(r["weight_decay"], []).append(r)
  parts, ok = [], []
  for wd, rs in sorted(by_wd.items()):
    n = sum(np.isfinite(r["test_acc_099_step"]) for r in rs)
    steps = [int(r["test_acc_099_step"]) for r in rs if np.isfinite(r["test_acc_099_step"])]
    parts.append(f"wd {wd:g}: {n}/{len(rs)} runs reach test acc 0.99"
                 + (f" (steps {min(steps)}-{max(steps)})" if steps else ""))
    ok.append((wd, n, len(rs)))
  hi = [x for x in ok if x[0] > 0]
  lo = [x for x in ok if x[0] == 0]
  if not hi or not lo:
    status = "not measured"
  elif all(n == m for _, n, m in hi) and not _wd0_soon(grok):
    status = "agrees"
  elif all(n == 0 for _, n, _ in hi):
    status = "differs"
  else:
    status = "mixed"
  return {"claim": claim, "measure": "test_acc", "measured": "; ".join(parts), "status": status}


FAR_LATER = 10.0  # "far later": at least a decade after the last weight-decay run groks


def _wd0_soon(grok: list[dict]) -> bool:
  """Whether some weight-decay-0 run reached test accuracy 0.99 within FAR_LATER times the
  latest step at which a weight-decay run did. A long run without weight decay can grok
  late (e.g. at 60k against 2k): the claim says "does not, or far later", so that agrees."""
  steps = lambda keep: [r["test_acc_099_step"] for r in grok if keep(r["weight_decay"])
                        and np.isfinite(r["test_acc_099_step"])]
  hi, lo = steps(lambda wd: wd > 0), steps(lambda wd: wd == 0)
  return bool(lo) and (not hi or min(lo) < FAR_LATER * max(hi))


def _coincidence_claim(leads: list[dict]) -> dict:
  primary = [r for r in leads if r["method"] == "half" and r["verdict"] != "n/a"
             and r["measure"] != "test_loss"]
  kinds = ("before", "with", "after", "mixed")
  counts = {v: sum(r["verdict"] == v for r in primary) for v in kinds}
  n = sum(counts.values())
  status = ("not measured" if n == 0 else "agrees" if counts["with"] >= n / 2 else "differs")
  return {"claim": "the jump coincides with the collapse of complexity (no lead either way)",
          "measure": "lead verdicts (half-change)", "status": status,
          "measured": f"{n} measure x group verdicts: " + ", ".join(f"{v} {k}" for k, v in
                                                                    counts.items())}


def lead_sentences(leads: list[dict], labels: dict[str, str]) -> str:
  """Plain statement of which measures move before, with, or after test accuracy."""
  primary = [r for r in leads if r["method"] == "half" and r["verdict"] != "n/a"]
  per: dict[str, list[dict]] = {}
  for r in primary:
    per.setdefault(r["measure"], []).append(r)
  groups: dict[str, list[str]] = {"before": [], "with": [], "after": [], "mixed": []}
  for m, rs in per.items():
    vs = {r["verdict"] for r in rs}
    v = vs.pop() if len(vs) == 1 else "mixed"
    lead = np.nanmean([r["lead_decades_mean"] for r in rs])
    where = ", ".join(f"{r['op']} wd{r['weight_decay']:g}: {r['verdict']} "
                      f"({r['lead_decades_mean']:+.2f} dec, n={r['n_timed']})" for r in rs)
    groups[v].append(f"`{m}` ({labels.get(m, m)}; mean lead {lead:+.2f} decades; {where})")
  if not per:
    return ("No lead time could be measured: no group of runs both generalised (test "
            "accuracy reached 0.5) and had at least two seeds with a timed measure.")
  words = {"before": "**Moved before test accuracy** (in every group, already past half its "
                     "post-memorisation change at a checkpoint where test accuracy was still "
                     "below 0.5)",
           "with": "**Moved with test accuracy** (the checkpoints cannot order the two)",
           "after": "**Moved after test accuracy**",
           "mixed": "**Mixed** (the order differs between seeds or ops)"}
  lines = [f"- {words[k]}: " + ("; ".join(v) if v else "none") for k, v in groups.items()]
  return "\n".join(lines)
