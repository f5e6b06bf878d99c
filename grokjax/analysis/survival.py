"""Grok time as survival data: Kaplan-Meier curves, the median grok step, fraction grokked.

**Grok time** of a run: the first evaluated step at which test accuracy reaches
`threshold` (0.99) — an event — or, for a run that never gets there, its last
evaluated step, where it is right-censored (it may still grok later; we only know it
had not by then). Grokking happens somewhere between the evaluation before and the
one that sees it; as every run of a sweep shares its evaluation grid, the estimate
is read on that grid (no interval-censoring correction). Averaging grok steps over
the runs that grokked would drop the slow runs and bias the answer early; the
Kaplan-Meier estimate keeps them.

**Kaplan-Meier.** At each distinct event step t_i, with n_i runs still at risk (grok
time >= t_i: a run censored at t_i is still at risk there) and d_i events,
S(t) = prod_{t_i <= t} (1 - d_i / n_i), the probability of not having grokked by t.
Greenwood's variance: Var S(t) = S(t)^2 sum_{t_i <= t} d_i / (n_i (n_i - d_i)).
The pointwise interval is the log-log one (Kalbfleisch-Prentice): with
se = sqrt(sum d_i / (n_i (n_i - d_i))) / |log S(t)|, the interval is
[S^exp(+z se), S^exp(-z se)], z the normal quantile of (1 + level) / 2; it stays
inside (0, 1). Where S(t) = 0 (every run still at risk grokked) the interval is
undefined (NaN).

**Median grok step**: the first event step with S <= 0.5 (NaN: not reached within
the budget). Its interval is the Brookmeyer-Crowley construction, the steps whose
pointwise interval contains 0.5, here with the log-log pointwise interval: from the
first step with the lower limit <= 0.5 to the first with the upper limit <= 0.5
(NaN upper end: not reached). The same convention as R's survfit and lifelines.
**Fraction grokked by the budget** = 1 - S(budget), budget = the group's last
evaluated step.

Groups are op x weight decay x any other swept run field (lr, train_frac) that takes
more than one value in the table; a group's runs differ by seed.

>>> fit = kaplan_meier([100, 200, 200, 300], [True, True, False, True])
>>> fit.survival.tolist(), km_median(fit)[0]
([0.75, 0.5, 0.0], 200.0)
"""

from __future__ import annotations

import statistics
from typing import NamedTuple, Sequence

import numpy as np

from grokjax.analysis.tables import first_step_at, run_info, runs_of, trajectory

CANDIDATE_FIELDS = ("lr", "train_frac")  # grouped by when the sweep varies them


class SurvivalFit(NamedTuple):
  """A Kaplan-Meier estimate: per distinct event step [K], and the censoring."""

  time: np.ndarray  # [K] distinct event steps, ascending
  n_at_risk: np.ndarray  # [K] runs with grok time >= time
  n_events: np.ndarray  # [K] runs grokking at time
  survival: np.ndarray  # [K] S just after time
  greenwood: np.ndarray  # [K] sum d / (n (n - d)) up to time (inf once S = 0)
  ci_lo: np.ndarray  # [K] log-log pointwise interval of S
  ci_hi: np.ndarray  # [K]
  censored: np.ndarray  # [C] steps at which runs were censored, ascending
  n: int
  last: float  # the largest grok or censoring step


def kaplan_meier(times, events, *, level: float = 0.95) -> SurvivalFit:
  """Kaplan-Meier estimate with Greenwood variance and log-log intervals (module doc)."""
  t, e = np.asarray(times, np.float64), np.asarray(events, bool)
  at = np.unique(t[e])
  n_risk = np.array([np.sum(t >= u) for u in at], np.int64)
  d = np.array([np.sum((t == u) & e) for u in at], np.int64)
  surv = np.cumprod(1.0 - d / np.maximum(n_risk, 1))
  with np.errstate(divide="ignore", invalid="ignore"):
    gw = np.cumsum(np.where(n_risk > d, d / (n_risk * (n_risk - d.astype(np.float64))), np.inf))
    z = statistics.NormalDist().inv_cdf((1.0 + level) / 2.0)
    se = np.sqrt(gw) / np.abs(np.log(surv))
    ok = (surv > 0) & np.isfinite(se)
    lo = np.where(ok, surv ** np.exp(z * se), np.nan)
    hi = np.where(ok, surv ** np.exp(-z * se), np.nan)
  return SurvivalFit(at, n_risk, d, surv, gw, lo, hi, np.sort(t[~e]), int(t.size),
                     float(t.max()) if t.size else np.nan)


def survival_at(fit: SurvivalFit, step: float) -> float:
  """S(step) of the right-continuous step function (1 before the first event)."""
  i = np.searchsorted(fit.time, step, side="right")
  return 1.0 if i == 0 else float(fit.survival[i - 1])


def _first_at_or_below(time, curve, level: float) -> float:
  hit = np.flatnonzero(np.nan_to_num(curve, nan=np.inf) <= level)
  return float(time[hit[0]]) if hit.size else np.nan


def km_median(fit: SurvivalFit, level: float = 0.5) -> tuple[float, float, float]:
  """(median, ci_lo, ci_hi) grok step (module doc); NaN where not reached. `level`
  other than 0.5 gives that quantile of S (e.g. 0.75: the step where 25 % grokked)."""
  return (_first_at_or_below(fit.time, fit.survival, level),
          _first_at_or_below(fit.time, fit.ci_lo, level),
          _first_at_or_below(fit.time, fit.ci_hi, level))


def grok_times(metrics: dict, threshold: float = 0.99) -> list[dict]:
  """Per run: its run fields, grok_step (event or censoring step), grokked, last_step."""
  rows = []
  for run in runs_of(metrics):
    steps, test = trajectory(metrics, run, "test_acc")
    if not steps.size:
      continue
    hit = first_step_at(steps, test, threshold)
    rows.append({**run_info(metrics, run), "grok_step": float(steps[-1] if hit is None else hit),
                 "grokked": hit is not None, "last_step": float(steps[-1])})
  return rows


def survival_groups(rows: list[dict], fields: Sequence[str] | None = None
                    ) -> tuple[tuple[str, ...], dict[tuple, list[dict]]]:
  """(fields, {group key: rows}); fields default to op, weight_decay and the swept ones."""
  if fields is None:
    swept = [f for f in CANDIDATE_FIELDS if len({r.get(f) for r in rows}) > 1]
    fields = ("op", "weight_decay", *swept)
  out: dict[tuple, list[dict]] = {}
  for r in rows:
    out.setdefault(tuple(r.get(f) for f in fields), []).append(r)
  return tuple(fields), out


def _fit(group: list[dict], level: float) -> SurvivalFit:
  return kaplan_meier([r["grok_step"] for r in group], [r["grokked"] for r in group],
                      level=level)


def survival_table(metrics: dict, *, threshold: float = 0.99, fields: Sequence[str] | None = None,
                   level: float = 0.95) -> list[dict]:
  """Per group: n, events, censored, median grok step with its interval, fraction grokked.

  Columns: the group fields, n, events, censored, median, ci_lo, ci_hi (NaN: not
  reached), budget (the group's last evaluated step) and fraction_grokked
  (1 - S(budget)).

  >>> import numpy as np
  >>> m = {"run": np.repeat([0, 1], 2), "op": np.array(["add"] * 4, object),
  ...      "weight_decay": np.ones(4), "step": np.tile([0, 100], 2),
  ...      "test_acc": np.array([0.0, 1.0, 0.0, 0.2])}
  >>> r = survival_table(m)[0]
  >>> r["events"], r["censored"], r["fraction_grokked"]
  (1, 1, 0.5)
  """
  fields, groups = survival_groups(grok_times(metrics, threshold), fields)
  out = []
  for key, grp in groups.items():
    fit = _fit(grp, level)
    median, lo, hi = km_median(fit)
    budget = max(r["last_step"] for r in grp)
    events = sum(bool(r["grokked"]) for r in grp)
    out.append({**dict(zip(fields, key)), "n": len(grp), "events": events,
                "censored": len(grp) - events, "median": median, "ci_lo": lo, "ci_hi": hi,
                "budget": budget, "fraction_grokked": 1.0 - survival_at(fit, budget)})
  return out


def _held(v: np.ndarray) -> np.ndarray:
  """1 at step 0, the values at the event steps, the last one held to the budget."""
  return np.r_[1.0, v, v[-1:] if v.size else 1.0].astype(np.float64)


def survival_curves(metrics: dict, *, threshold: float = 0.99,
                    fields: Sequence[str] | None = None, level: float = 0.95) -> list[dict]:
  """Per group: the Kaplan-Meier step function, ready for `ax.step(..., where="post")`.

  Keys: the group fields; step [K + 2] = 0, the event steps, the budget; survival,
  ci_lo, ci_hi [K + 2] (1 at step 0, held flat to the budget; draw 1 - survival for
  the fraction grokked); censored_step, censored_survival [C]: tick marks where runs
  were censored.
  """
  fields, groups = survival_groups(grok_times(metrics, threshold), fields)
  out = []
  for key, grp in groups.items():
    fit = _fit(grp, level)
    out.append({**dict(zip(fields, key)),
                "step": np.r_[0.0, fit.time, max(r["last_step"] for r in grp)],
                "survival": _held(fit.survival), "ci_lo": _held(fit.ci_lo),
                "ci_hi": _held(fit.ci_hi), "censored_step": fit.censored,
                "censored_survival": np.array([survival_at(fit, c) for c in fit.censored])})
  return out
