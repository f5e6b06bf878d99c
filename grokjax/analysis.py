"""Grokking analysis on tidy tables: grokking steps, transitions, lead times, correlations.

Pure numpy on the column dicts `runio.read_csv` returns (metrics.csv, measures.csv,
llc.csv, ...: one row per run x step). Nothing here loads a checkpoint.

**Log-step axis.** Trajectories are read on u = log10(1 + step): step 0 (the
initialisation) stays on the axis and, beyond a few steps, u is log10(step). A step
"interpolated on log step" is 10**u - 1 with u linearly interpolated between samples.

**Generalisation step** t_gen: the first step at which test accuracy reaches 0.5,
interpolated on u between the last sample below and the first at or above it (NaN if
it never does). After grokking accuracy can collapse and recover; the first crossing
is stable, a value read at a fixed step is not (PAPER.md).

**Transition step of a measure** (the step at which it "moves"). Most measures change
twice: while the network memorises (from initialisation to train accuracy 1) and
around grokking. The question "does simplification lead generalisation?" is about the
second change, so the primary definitions read the trajectory on the post-memorisation
window [t_fit, end], t_fit = the first evaluation with train accuracy >= `fit_level`
(0.99); a third reads the whole run for contrast:
  'half' (primary)   on the window: v_0 = median of its first `n_ends` samples, v_end =
                     median of its last `n_ends` (fewer for trajectories of under 18
                     samples), Δ = v_end - v_0; the first step at which v reaches
                     v_0 + Δ/2 going in the direction of Δ, interpolated on u.
                     "Where it completes half of its post-memorisation change."
  'sigmoid' (check)  on the window: the midpoint u_0 of the least-squares logistic step
                     v ≈ a + b / (1 + exp(-(u - u_0) / w)) on the u axis, fitted by a
                     grid over (u_0, w) with a, b solved exactly at each grid point.
                     Insensitive to where a non-monotone trajectory first crosses.
  'half_all'         'half' on the whole run from initialisation: it times the
                     memorisation transient for measures whose largest change happens
                     there (e.g. the LLC rises from ~0 while the network fits).
A trajectory whose net change |Δ| (or fitted |b|) is below `min_snr` times its noise
level sigma (from the median absolute successive difference, 1.4826 MAD / sqrt 2) has
no transition (NaN): there is nothing to time.

**Lead time** = t_gen - t_measure (steps; positive: the measure moves first), also in
decades, log10((1 + t_gen) / (1 + t_measure)). Per op x weight decay (x any other run
field) over seeds: the mean and a percentile bootstrap 95 % interval (seeds resampled
with replacement). Sampling resolution is kept honest: a run counts as 'before' only
if the measure had already crossed at a sampled step <= the last test-accuracy sample
below 0.5, 'after' only if it had not crossed at a sample >= the first test sample
at or above 0.5, and 'with' otherwise (the two brackets overlap: the order is not
resolved by the checkpoints). A group's verdict is 'before' / 'with' / 'after' when
every run with both steps says so (at least `min_runs` runs), 'mixed' when they
disagree and 'n/a' with fewer runs (e.g. no run generalised).

**Spearman correlation** of a measure with test accuracy over one run's trajectory
(the steps both tables have), with average ranks for ties.

>>> import numpy as np
>>> steps = np.array([0, 10, 100, 1000, 10000])
>>> round(generalisation_step(steps, np.array([0.0, 0.0, 0.2, 0.8, 1.0])), 1)
317.0
>>> round(transition_step(steps, np.array([5.0, 5.0, 5.0, 1.0, 1.0])), 1)
317.0
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

METHODS = ("half", "sigmoid", "half_all")
WINDOWED = ("half", "sigmoid")  # read on the post-memorisation window
RUN_FIELDS = ("run", "op", "seed", "weight_decay", "lr", "train_frac", "grokfast_alpha",
              "grokfast_lamb", "grokfast_window", "weight_norm")  # runio's run columns
GROUP_FIELDS = ("op", "weight_decay", "lr", "train_frac")  # a group's runs differ by seed


# ---------------------------------------------------------------- the log-step axis

def log_axis(steps) -> np.ndarray:
  return np.log10(1.0 + np.asarray(steps, np.float64))


def from_log_axis(u) -> np.ndarray | float:
  return 10.0 ** np.asarray(u, np.float64) - 1.0


def _crossing(steps, values, level: float, rising: bool) -> tuple[float, float, float]:
  """(step, bracket_lo, bracket_hi) of the first crossing of `level`, interpolated on u.

  The bracket is the pair of sampled steps around the crossing (lo = hi at a sample
  that is already past the level at the start); NaNs when it never crosses.
  """
  s, v = np.asarray(steps, np.float64), np.asarray(values, np.float64)
  past = v >= level if rising else v <= level
  hit = np.flatnonzero(past & np.isfinite(v))
  if not hit.size:
    return np.nan, np.nan, np.nan
  i = hit[0]
  if i == 0:
    return float(s[0]), float(s[0]), float(s[0])
  u0, u1 = log_axis(s[i - 1 : i + 1])
  frac = (level - v[i - 1]) / (v[i] - v[i - 1]) if v[i] != v[i - 1] else 1.0
  return float(from_log_axis(u0 + frac * (u1 - u0))), float(s[i - 1]), float(s[i])


def crossing_step(steps, values, level: float, *, rising: bool = True) -> float:
  """First step at which values reach `level` (>= if rising, <= if not), on u; NaN if never."""
  return _crossing(steps, values, level, rising)[0]


def generalisation_step(steps, test_acc, level: float = 0.5) -> float:
  """First step at which test accuracy reaches `level`, interpolated on log step."""
  return crossing_step(steps, test_acc, level, rising=True)


# ---------------------------------------------------------------- transitions

def noise_level(values) -> float:
  """Robust noise scale of a trajectory: 1.4826 * median |successive difference| / sqrt 2."""
  d = np.diff(np.asarray(values, np.float64))
  d = d[np.isfinite(d)]
  return float(1.4826 * np.median(np.abs(d)) / np.sqrt(2.0)) if d.size else 0.0


def half_change(steps, values, *, n_ends: int = 3, min_snr: float = 3.0) -> dict:
  """The 'half' transition: first step with half of the net change done (module doc)."""
  v = np.asarray(values, np.float64)
  k = max(1, min(n_ends, v.size // 6))  # short trajectories: the end samples themselves
  start, end = float(np.median(v[:k])), float(np.median(v[-k:]))
  change, sigma = end - start, noise_level(v)
  out = {"step": np.nan, "lo": np.nan, "hi": np.nan, "change": change, "noise": sigma}
  if not np.isfinite(change) or change == 0 or abs(change) < min_snr * sigma:
    return out
  step, lo, hi = _crossing(steps, v, start + change / 2, rising=change > 0)
  return {**out, "step": step, "lo": lo, "hi": hi}


def _bracket(steps, step: float) -> tuple[float, float]:
  s = np.asarray(steps, np.float64)
  if not np.isfinite(step):
    return np.nan, np.nan
  i = np.searchsorted(s, step)
  if i < s.size and s[i] == step:
    return step, step
  return float(s[max(i - 1, 0)]), float(s[min(i, s.size - 1)])


def _logistic_grid(u, v, centres, widths):
  """(sse, b) of the best a + b * logistic((u - c) / w) at each grid point [C, W]."""
  c, w = np.meshgrid(centres, widths, indexing="ij")
  z = np.clip((u[None, None, :] - c[..., None]) / w[..., None], -60, 60)
  g = 1.0 / (1.0 + np.exp(-z))  # [centres, widths, samples]
  g = g - g.mean(-1, keepdims=True)
  var = np.sum(g**2, -1)
  b = np.where(var > 0, np.sum(g * (v - v.mean()), -1) / np.where(var > 0, var, 1.0), 0.0)
  return np.sum((v - v.mean() - b[..., None] * g) ** 2, -1), b


def sigmoid_fit(steps, values, *, n_centres: int = 200, widths: Sequence[float] | None = None,
                min_snr: float = 3.0, min_side: int = 2) -> dict:
  """The 'sigmoid' transition: least-squares logistic step on u (module doc).

  A coarse grid over (centre, width), then a fine grid around the best point. The
  centre keeps at least `min_side` samples on each side, so a step cannot be fitted
  to one stray end point.
  """
  u, v = log_axis(steps), np.asarray(values, np.float64)
  ok = np.isfinite(v)
  u, v = u[ok], v[ok]
  sigma = noise_level(values)
  if u.size < 2 * min_side + 1:
    return {"step": np.nan, "lo": np.nan, "hi": np.nan, "change": np.nan, "noise": sigma,
            "width_decades": np.nan}
  widths = np.geomspace(0.02, 1.0, 12) if widths is None else np.asarray(widths, np.float64)
  centres = np.linspace(u[min_side], u[-min_side - 1], n_centres)
  sse, b = _logistic_grid(u, v, centres, widths)
  i, j = np.unravel_index(np.argmin(sse), sse.shape)
  dc = centres[1] - centres[0] if n_centres > 1 else 0.0
  centres = np.linspace(centres[i] - dc, centres[i] + dc, 41)
  widths = np.geomspace(widths[j] / 1.5, widths[j] * 1.5, 21)
  sse, b = _logistic_grid(u, v, centres, widths)
  i, j = np.unravel_index(np.argmin(sse), sse.shape)
  out = {"step": np.nan, "lo": np.nan, "hi": np.nan, "change": float(b[i, j]), "noise": sigma,
         "width_decades": float(widths[j])}
  if b[i, j] == 0 or abs(b[i, j]) < min_snr * sigma:
    return out
  step = float(from_log_axis(centres[i]))
  lo, hi = _bracket(steps, step)
  return {**out, "step": step, "lo": lo, "hi": hi}


def transition_step(steps, values, *, method: str = "half", **kw) -> float:
  """A measure's transition step by `method` (see METHODS); NaN if it does not move."""
  return transition(steps, values, method=method, **kw)["step"]


def transition(steps, values, *, method: str = "half", start: float | None = None, **kw) -> dict:
  """{step, lo, hi (the samples around it), change, noise} by `method`.

  `start` (the windowed methods only): read the trajectory from this step on; NaN
  (not timed) when it is NaN or leaves fewer than 3 samples.
  """
  fns = {"half": half_change, "sigmoid": sigmoid_fit, "half_all": half_change}
  if method not in fns:
    raise ValueError(f"unknown transition method {method!r}; valid: {', '.join(METHODS)}")
  steps, values = np.asarray(steps), np.asarray(values, np.float64)
  if start is not None and method in WINDOWED:
    keep = steps >= start if np.isfinite(start) else np.zeros(steps.shape, bool)
    steps, values = steps[keep], values[keep]
  if steps.size < 3:
    return {"step": np.nan, "lo": np.nan, "hi": np.nan, "change": np.nan, "noise": np.nan}
  return fns[method](steps, values, **kw)


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


# ---------------------------------------------------------------- tidy-table plumbing

def runs_of(table: dict) -> list[int]:
  return list(dict.fromkeys(np.asarray(table["run"]).tolist()))


def run_info(table: dict, run: int) -> dict:
  i = np.flatnonzero(np.asarray(table["run"]) == run)[0]
  return {k: _py(table[k][i]) for k in RUN_FIELDS if k in table}


def _py(x):
  return x.item() if isinstance(x, np.generic) else x


def trajectory(table: dict, run: int, column: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps ascending, values) of one run's column, non-finite values dropped."""
  sel = np.asarray(table["run"]) == run
  steps, values = np.asarray(table["step"])[sel], np.asarray(table[column], np.float64)[sel]
  order = np.argsort(steps, kind="mergesort")
  steps, values = steps[order], values[order]
  ok = np.isfinite(values)
  return steps[ok], values[ok]


def measure_columns(table: dict, exclude: Iterable[str] = ()) -> list[str]:
  """The numeric, non-run columns of a tidy table."""
  skip = set(RUN_FIELDS) | {"step"} | set(exclude)
  return [k for k, v in table.items() if k not in skip and np.asarray(v).dtype.kind in "fi"]


# ---------------------------------------------------------------- tables

def first_step_at(steps, values, threshold: float) -> float:
  """First sampled step with values >= threshold (not interpolated), NaN if none."""
  hit = np.flatnonzero(np.asarray(values) >= threshold)
  return float(np.asarray(steps)[hit[0]]) if hit.size else np.nan


def grokking_table(metrics: dict, threshold: float = 0.99, gen_level: float = 0.5) -> list[dict]:
  """Per run: steps where train/test accuracy reach `threshold`, t_gen, final values."""
  rows = []
  for run in runs_of(metrics):
    steps, train = trajectory(metrics, run, "train_acc")
    _, test = trajectory(metrics, run, "test_acc")
    fit, grok = first_step_at(steps, train, threshold), first_step_at(steps, test, threshold)
    rows.append({**run_info(metrics, run), "train_acc_099_step": fit, "test_acc_099_step": grok,
                 "delay_steps": grok - fit, "gen_step": generalisation_step(steps, test, gen_level),
                 "final_train_acc": float(train[-1]), "final_test_acc": float(test[-1]),
                 "final_step": int(steps[-1])})
  return rows


def _gen_brackets(metrics: dict, level: float) -> dict[int, tuple[float, float, float]]:
  out = {}
  for run in runs_of(metrics):
    steps, test = trajectory(metrics, run, "test_acc")
    out[run] = _crossing(steps, test, level, rising=True)
  return out


def order_of(lo: float, hi: float, gen_lo: float, gen_hi: float) -> str:
  """'before' / 'after' / 'with' from the sampled brackets (module doc); '' if undefined."""
  if not np.all(np.isfinite([lo, hi, gen_lo, gen_hi])):
    return ""
  if hi <= gen_lo and not (hi == gen_lo == gen_hi):
    return "before"
  if lo >= gen_hi and not (lo == gen_lo == gen_hi):
    return "after"
  return "with"


def fit_steps(metrics: dict, fit_level: float = 0.99) -> dict[int, float]:
  """Per run: t_fit, the first evaluated step with train accuracy >= fit_level (NaN if none)."""
  return {run: first_step_at(*trajectory(metrics, run, "train_acc"), fit_level)
          for run in runs_of(metrics)}


def transition_table(metrics: dict, tables: dict[str, dict], *, methods=METHODS,
                     gen_level: float = 0.5, fit_level: float = 0.99, **kw) -> list[dict]:
  """Per run x measure x method: transition step, t_gen, lead, order, Spearman with test acc.

  `tables` maps each measure name to the tidy table holding it as a column
  (metrics.csv columns such as param_norm, measures.csv columns, llc/mean, ...).
  """
  gens, fits = _gen_brackets(metrics, gen_level), fit_steps(metrics, fit_level)
  rows = []
  for name, table in tables.items():
    for run in runs_of(table):
      steps, values = trajectory(table, run, name)
      if steps.size < 3 or run not in gens:
        continue
      rho = spearman(values, _at_steps(metrics, run, "test_acc", steps))
      gen, gen_lo, gen_hi = gens[run]
      for method in methods:
        t = transition(steps, values, method=method, start=fits.get(run, np.nan), **kw)
        rows.append({**run_info(table, run), "measure": name, "method": method,
                     "fit_step": fits.get(run, np.nan),
                     "transition_step": t["step"], "gen_step": gen, "lead_steps": gen - t["step"],
                     "lead_decades": float(log_axis(gen) - log_axis(t["step"])),
                     "order": order_of(t["lo"], t["hi"], gen_lo, gen_hi),
                     "change": t["change"], "noise": t["noise"], "bracket_lo": t["lo"],
                     "bracket_hi": t["hi"], "n_samples": int(steps.size), "spearman_test_acc": rho})
  return rows


def _at_steps(table: dict, run: int, column: str, steps) -> np.ndarray:
  s, v = trajectory(table, run, column)
  idx = np.searchsorted(s, steps)
  idx = np.clip(idx, 0, max(s.size - 1, 0))
  found = (s.size > 0) & (s[idx] == steps)
  return np.where(found, v[idx], np.nan)


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
  out = []
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
  out = []
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
  """Measures ranked by lead (decades), pooled over ops: (measure, mean, min, max, n groups)."""
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
  count as memorisation; after: median over samples with test accuracy >= threshold.
  `change` = after - plateau, `rel_change` divides by |plateau|. The sign says whether
  the measure rose or fell through grokking.
  """
  rows = []
  for run in runs_of(table):
    steps, values = trajectory(table, run, column)
    if steps.size == 0 or run not in runs_of(metrics):
      continue
    train = _at_steps(metrics, run, "train_acc", steps)
    test = _at_steps(metrics, run, "test_acc", steps)
    after = values[test >= threshold]
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
