"""Lead times over seeds: transition table, summaries, verdicts, ranking, correlations.

Pure numpy on the tidy tables `runio.read_csv` returns; the transition definitions
are `transitions` (module doc).

**Lead time** = t_ref - t_measure (steps; positive: the measure moves first), also in
decades, log10((1 + t_ref) / (1 + t_measure)). The reference is what the measure's
definition is compared with: for the midpoint methods ('half', 'sigmoid',
'half_all') t_gen, test accuracy crossing 0.5; for 'onset' the generalisation onset,
where test accuracy leaves its memorisation plateau (`transitions.generalisation_onset`).
Per op x weight decay (x any other run field) over seeds: the mean and a percentile
bootstrap 95 % interval (seeds resampled with replacement). Sampling resolution is
kept honest: a run counts as 'before' only if the measure had already moved at a
sampled step <= the last sample before the reference event (test accuracy below 0.5;
still on its plateau), 'after' only if it had not moved at a sample >= the first
one at or past the reference event, and 'with' otherwise (the two brackets overlap:
the order is not resolved by the checkpoints). A group's verdict is 'before' /
'with' / 'after' when every run with both steps says so (at least `min_runs` runs),
'mixed' when they disagree and 'n/a' with fewer runs (e.g. no run generalised).

**Spearman correlation** of a measure with test accuracy over one run's trajectory
(the steps both tables have), with average ranks for ties.

>>> order_of(700, 800, 900, 950), verdict(["before", "before", "after"])
('before', 'mixed')
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from grokjax.analysis.tables import (at_steps, first_step_at, nan_if_none, run_info, runs_of,
                                     trajectory)
from grokjax.analysis.transitions import (METHODS, MIDPOINTS, _crossing, generalisation_onset,
                                          generalisation_step, log_axis, transition)
from grokjax.runio import OPTIMIZER_COLUMNS

# a group's runs differ by seed only (fields no row has are left out: see _present)
GROUP_FIELDS = ("op", "weight_decay", "lr", "train_frac", *OPTIMIZER_COLUMNS)


# ---------------------------------------------------------------- correlations

def ranks(x) -> np.ndarray:
  """Ranks 1..n with ties given their average rank."""
  x = np.asarray(x, np.float64)
  order = np.argsort(x, kind="mergesort")
  r = np.empty(x.size)
  r[order] = np.arange(1, x.size + 1)
  _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
  sums = np.zeros(counts.size)
  np.add.at(sums, inverse, r)
  return (sums / counts)[inverse]


def spearman(a, b) -> float:
  """Spearman rank correlation of two vectors (finite pairs only); NaN if either is constant."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  ok = np.isfinite(a) & np.isfinite(b)
  if ok.sum() < 3:
    return np.nan
  ra, rb = ranks(a[ok]), ranks(b[ok])
  ra, rb = ra - ra.mean(), rb - rb.mean()
  den = np.sqrt(np.sum(ra**2) * np.sum(rb**2))
  return float(np.sum(ra * rb) / den) if den > 0 else np.nan


# ---------------------------------------------------------------- tables

def grokking_table(metrics: dict, threshold: float = 0.99, gen_level: float = 0.5,
                   fit_level: float = 0.99, **onset_kw) -> list[dict]:
  """Per run: steps where train/test accuracy reach `threshold`, t_gen, onsets, final values.

  gen_onset_step is the generalisation onset (test accuracy leaving its plateau on the
  post-memorisation window), test_loss_onset_step the onset of test loss there (when
  the table has it); `onset_kw` goes to `transitions.onset`.
  """
  rows = []
  fits = fit_steps(metrics, fit_level)
  for run in runs_of(metrics):
    steps, train = trajectory(metrics, run, "train_acc")
    _, test = trajectory(metrics, run, "test_acc")
    fit = nan_if_none(first_step_at(steps, train, threshold))
    grok = nan_if_none(first_step_at(steps, test, threshold))
    row = {**run_info(metrics, run), "train_acc_099_step": fit, "test_acc_099_step": grok,
           "delay_steps": grok - fit, "gen_step": generalisation_step(steps, test, gen_level),
           "gen_onset_step": generalisation_onset(steps, test, start=fits[run], level=gen_level,
                                                  **onset_kw)["step"]}
    if "test_loss" in metrics:
      row["test_loss_onset_step"] = transition(*trajectory(metrics, run, "test_loss"),
                                               method="onset", start=fits[run], **onset_kw)["step"]
    rows.append({**row, "final_train_acc": float(train[-1]), "final_test_acc": float(test[-1]),
                 "final_step": int(steps[-1])})
  return rows


def _gen_brackets(metrics: dict, level: float) -> dict[int, tuple[float, float, float]]:
  """Per run: (t_gen, bracket_lo, bracket_hi)."""
  out = {}
  for run in runs_of(metrics):
    steps, test = trajectory(metrics, run, "test_acc")
    out[run] = _crossing(steps, test, level, rising=True)
  return out


def _onset_brackets(metrics: dict, fits: dict[int, float], level: float,
                    onset_kw: dict) -> dict[int, tuple[float, float, float]]:
  """Per run: (generalisation onset, bracket_lo, bracket_hi)."""
  out = {}
  for run in runs_of(metrics):
    steps, test = trajectory(metrics, run, "test_acc")
    t = generalisation_onset(steps, test, start=fits.get(run, np.nan), level=level, **onset_kw)
    out[run] = t["step"], t["lo"], t["hi"]
  return out


def order_of(lo: float, hi: float, gen_lo: float, gen_hi: float) -> str:
  """'before' / 'after' / 'with' from the sampled brackets (module doc); '' if undefined.

  (lo, hi) bracket the measure's transition, (gen_lo, gen_hi) the reference event's.
  """
  if not np.all(np.isfinite([lo, hi, gen_lo, gen_hi])):
    return ""
  if hi <= gen_lo and not (hi == gen_lo == gen_hi):
    return "before"
  if lo >= gen_hi and not (lo == gen_lo == gen_hi):
    return "after"
  return "with"


def fit_steps(metrics: dict, fit_level: float = 0.99) -> dict[int, float]:
  """Per run: t_fit, the first evaluated step with train accuracy >= fit_level (NaN if none)."""
  return {run: nan_if_none(first_step_at(*trajectory(metrics, run, "train_acc"), fit_level))
          for run in runs_of(metrics)}


def transition_table(metrics: dict, tables: dict[str, dict], *, methods=METHODS,
                     gen_level: float = 0.5, fit_level: float = 0.99, onset_kw: dict | None = None,
                     **kw) -> list[dict]:
  """Per run x measure x method: transition step, reference step, lead, order, Spearman.

  `tables` maps each measure name to the tidy table holding it as a column
  (metrics.csv columns such as param_norm, measures.csv columns, llc/mean, ...).
  Every row has gen_step (t_gen) and gen_onset_step (the generalisation onset);
  reference_step is the one its lead is measured against (module doc). `kw` goes to
  every method, `onset_kw` to the onsets only (of the measure and of test accuracy).
  """
  onset_kw = onset_kw or {}
  fits = fit_steps(metrics, fit_level)
  gens, onsets = _gen_brackets(metrics, gen_level), _onset_brackets(metrics, fits, gen_level,
                                                                   onset_kw)
  rows = []
  for name, table in tables.items():
    for run in runs_of(table):
      steps, values = trajectory(table, run, name)
      if steps.size < 3 or run not in gens:
        continue
      rho = spearman(values, at_steps(metrics, run, "test_acc", steps))
      fit = fits.get(run, np.nan)
      for method in methods:
        extra = onset_kw if method == "onset" else {}
        t = transition(steps, values, method=method, start=fit, **kw, **extra)
        ref, ref_lo, ref_hi = gens[run] if method in MIDPOINTS else onsets[run]
        rows.append({**run_info(table, run), "measure": name, "method": method,
                     "fit_step": fit, "transition_step": t["step"], "gen_step": gens[run][0],
                     "gen_onset_step": onsets[run][0], "reference_step": ref,
                     "lead_steps": ref - t["step"],
                     "lead_decades": float(log_axis(ref) - log_axis(t["step"])),
                     "order": order_of(t["lo"], t["hi"], ref_lo, ref_hi),
                     "change": t["change"], "noise": t["noise"], "bracket_lo": t["lo"],
                     "bracket_hi": t["hi"], "n_samples": int(steps.size), "spearman_test_acc": rho})
  return rows


# ---------------------------------------------------------------- summaries over seeds

def bootstrap_ci(x, *, key: int = 0, n_boot: int = 2000,
                 level: float = 0.95) -> tuple[float, float]:
  """Percentile bootstrap interval of the mean of x (NaN if fewer than 2 values)."""
  x = np.asarray(x, np.float64)
  x = x[np.isfinite(x)]
  if x.size < 2:
    return np.nan, np.nan
  rng = np.random.default_rng(key)
  means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
  a = (1.0 - level) / 2
  return float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def _present(rows: list[dict], fields: Sequence[str]) -> tuple[str, ...]:
  """The fields some row has (the optimizer's exist only in sweeps that vary them)."""
  return tuple(f for f in fields if any(f in r for r in rows))


def _groups(rows: list[dict], fields: Sequence[str]) -> dict[tuple, list[dict]]:
  out: dict[tuple, list[dict]] = {}
  for r in rows:
    out.setdefault(tuple(r.get(f) for f in fields), []).append(r)
  return out


def verdict(orders: Sequence[str], min_runs: int = 2) -> str:
  orders = [o for o in orders if o]
  if len(orders) < min_runs:
    return "n/a"
  if all(o == "before" for o in orders):
    return "before"
  if all(o == "after" for o in orders):
    return "after"
  if all(o == "with" for o in orders):
    return "with"
  return "mixed"


def lead_summary(rows: list[dict], *, key: int = 0, n_boot: int = 2000, min_runs: int = 2,
                 fields: Sequence[str] = GROUP_FIELDS) -> list[dict]:
  """Per group (op x weight decay ...) x measure x method: lead mean, bootstrap CI, verdict."""
  out, fields = [], _present(rows, fields)
  for k, grp in _groups(rows, (*fields, "measure", "method")).items():
    lead = np.array([r["lead_steps"] for r in grp], np.float64)
    dec = np.array([r["lead_decades"] for r in grp], np.float64)
    ok = np.isfinite(lead)
    lo, hi = bootstrap_ci(lead, key=key, n_boot=n_boot)
    dlo, dhi = bootstrap_ci(dec, key=key, n_boot=n_boot)
    orders = [r["order"] for r in grp]
    rho = np.array([r["spearman_test_acc"] for r in grp], np.float64)
    out.append({**dict(zip((*fields, "measure", "method"), k)),
                "n_runs": len(grp), "n_timed": int(ok.sum()),
                "seeds": " ".join(str(r.get("seed")) for r, o in zip(grp, ok) if o),
                "lead_mean": float(lead[ok].mean()) if ok.any() else np.nan,
                "lead_ci_lo": lo, "lead_ci_hi": hi,
                "lead_decades_mean": float(dec[ok].mean()) if ok.any() else np.nan,
                "lead_decades_ci_lo": dlo, "lead_decades_ci_hi": dhi,
                "n_before": orders.count("before"), "n_with": orders.count("with"),
                "n_after": orders.count("after"), "verdict": verdict(orders, min_runs),
                "spearman_mean": float(np.nanmean(rho)) if np.isfinite(rho).any() else np.nan})
  return out


def correlation_table(rows: list[dict], fields: Sequence[str] = GROUP_FIELDS) -> list[dict]:
  """Per group x measure: Spearman with test accuracy, mean and per seed (one method's rows)."""
  first = [r for r in rows if r["method"] == rows[0]["method"]] if rows else []
  out, fields = [], _present(first, fields)
  for k, grp in _groups(first, (*fields, "measure")).items():
    rho = np.array([r["spearman_test_acc"] for r in grp], np.float64)
    out.append({**dict(zip((*fields, "measure"), k)), "n_runs": len(grp),
                "spearman_mean": float(np.nanmean(rho)) if np.isfinite(rho).any() else np.nan,
                "spearman_min": float(np.nanmin(rho)) if np.isfinite(rho).any() else np.nan,
                "spearman_max": float(np.nanmax(rho)) if np.isfinite(rho).any() else np.nan,
                "per_seed": " ".join(f"{r.get('seed')}:{r['spearman_test_acc']:.3f}" for r in grp)})
  return out


def ranking(summary: list[dict], *, method: str = "half", weight_decay: float | None = None
            ) -> list[tuple[str, float, float, float, int]]:
  """Measures ranked by lead (decades), pooled over ops: (measure, mean, min, max, n groups).

  `method` picks the definition: a midpoint ('half', ...) or 'onset' (onset leads).
  """
  per: dict[str, list[float]] = {}
  for r in summary:
    if r["method"] != method or not np.isfinite(r["lead_decades_mean"]):
      continue
    if weight_decay is not None and r["weight_decay"] != weight_decay:
      continue
    per.setdefault(r["measure"], []).append(r["lead_decades_mean"])
  out = [(m, float(np.mean(v)), float(np.min(v)), float(np.max(v)), len(v)) for m, v in per.items()]
  return sorted(out, key=lambda t: -t[1])


# ---------------------------------------------------------------- change across grokking

def grokking_change(metrics: dict, table: dict, column: str, *, threshold: float = 0.99,
                    gen_level: float = 0.5) -> list[dict]:
  """Per run that generalised: the measure on the memorisation plateau and after grokking.

  plateau: median over samples before the first one with test accuracy >= gen_level
  that have train accuracy >= threshold (the last sample before it if there is none) —
  a loss spike after grokking also has high train and low test accuracy, and must not
  count as memorisation; after: median over samples with train and test accuracy both
  >= threshold. A long run's loss spikes after grokking ("slingshots") are saved densely
  by an accuracy trigger, and on the way back test accuracy can be 0.99 again while train
  accuracy is not: such a checkpoint is still inside the spike, not post-grokking state.
  `change` = after - plateau, `rel_change` divides by |plateau|. The sign says whether
  the measure rose or fell through grokking.
  """
  rows = []
  for run in runs_of(table):
    steps, values = trajectory(table, run, column)
    if steps.size == 0 or run not in runs_of(metrics):
      continue
    train = at_steps(metrics, run, "train_acc", steps)
    test = at_steps(metrics, run, "test_acc", steps)
    after = values[(test >= threshold) & (train >= threshold)]
    generalised = test >= gen_level
    before = np.arange(steps.size) < (np.argmax(generalised) if generalised.any() else steps.size)
    plateau = values[before & (train >= threshold)]
    if plateau.size == 0:
      plateau = values[before][-1:]
    if after.size == 0 or plateau.size == 0:
      continue
    p, a = float(np.median(plateau)), float(np.median(after))
    rows.append({**run_info(table, run), "measure": column, "plateau": p, "after": a,
                 "change": a - p, "rel_change": (a - p) / abs(p) if p != 0 else np.nan,
                 "n_plateau": int(plateau.size), "n_after": int(after.size)})
  return rows
