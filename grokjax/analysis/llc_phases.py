"""The LLC by phase label: pooled intervals over chains and seeds, and memorised vs end / late.

Reads llc.csv (one estimate per run x step: llc_mean, llc_std over its chains, num_chains,
diverged) beside metrics.csv. A row's labels are its `phase` cell (`phase_steps`); a table
written before that column is labelled by `phase_steps` on its own measured steps (the
labels then snap to the nearest measured step, not to the nearest saved one).

**Interval.** A group's estimates (op x weight decay x label: its seeds, and for a run that
never generalised its several late points) pool their chains: with m_i, s_i (sample std)
and c_i chains (num_chains less diverged) per estimate, N = sum c_i, the mean
M = sum c_i m_i / N and the pooled sd^2 = sum ((c_i - 1) s_i^2 + c_i (m_i - M)^2) / (N - 1),
the spread of every chain of every seed about M. The 95 % interval is M +- 1.96 sd / sqrt(N),
a normal one that treats the chains as independent draws: with few chains it is optimistic.

**The claim.** For every run that grokked (it has an `end` label), λ̂ at `memorised` against
λ̂ at `end` and at `late`: the run "falls" when each of those that passed its diagnostics is
below memorised; the fall is "resolved" when each difference exceeds 1.96 sqrt(s_a^2/c_a +
s_b^2/c_b), the two estimates' chain noise.

>>> m, lo, hi, n = pooled([10.0, 14.0], [1.0, 1.0], [2, 2])
>>> (m, n, round(hi - m, 2))
(12.0, 4, 2.4)
"""

from __future__ import annotations

import numpy as np

from grokjax.analysis.phase_steps import LABELS, cell_labels, run_phase_steps
from grokjax.analysis.tables import run_info, runs_of

Z95 = 1.96


def row_labels(llc: dict, metrics: dict) -> list[tuple[str, ...]]:
  """Each llc.csv row's phase labels (module doc)."""
  if "phase" in llc:
    return [cell_labels(c) for c in llc["phase"]]
  run, step = np.asarray(llc["run"]), np.asarray(llc["step"])
  measured = set(runs_of(metrics))
  by_run = {r: run_phase_steps(metrics, r, step[run == r]) for r in runs_of(llc)
            if r in measured}
  return [by_run.get(r, {}).get(s, ()) for r, s in zip(run.tolist(), step.tolist())]


def chains(llc: dict) -> np.ndarray:
  """The chains behind each estimate: num_chains less the diverged ones (1 if unrecorded)."""
  n = len(llc["llc_mean"])
  c = np.asarray(llc["num_chains"], np.float64) if "num_chains" in llc else np.ones(n)
  return c - (np.asarray(llc["diverged"], np.float64) if "diverged" in llc else 0.0)


def pooled(means, stds, counts) -> tuple[float, float, float, int]:
  """(mean, lo, hi, chains) of estimates pooled over their chains (module doc)."""
  m, s, c = (np.asarray(x, np.float64) for x in (means, stds, counts))
  ok = np.isfinite(m) & (c >= 1)
  m, s, c = m[ok], np.where(np.isfinite(s[ok]), s[ok], 0.0), c[ok]
  n = int(c.sum())
  if n == 0:
    return np.nan, np.nan, np.nan, 0
  mean = float(np.sum(c * m) / n)
  if n < 2:
    return mean, np.nan, np.nan, n
  sd = np.sqrt(np.sum((c - 1) * s**2 + c * (m - mean) ** 2) / (n - 1))
  half = Z95 * sd / np.sqrt(n)
  return mean, float(mean - half), float(mean + half), n


def phase_summary(llc: dict, metrics: dict, failed=None) -> list[dict]:
  """Per op x weight decay x label: mean λ̂ and its 95 % interval over chains and seeds,
  from the estimates that passed their diagnostics (`failed`: a bool per row, or None);
  the all_* columns pool every estimate, failed ones too, for contrast."""
  labels = row_labels(llc, metrics)
  bad = np.zeros(len(labels), bool) if failed is None else np.asarray(failed, bool)
  ops, wds = np.asarray(llc["op"]).astype(str), np.asarray(llc["weight_decay"], np.float64)
  c = chains(llc)
  std = np.asarray(llc["llc_std"], np.float64) if "llc_std" in llc else np.full(len(c), np.nan)
  rows = []
  for op, wd in dict.fromkeys(zip(ops.tolist(), wds.tolist())):
    for label in LABELS:
      sel = (ops == op) & (wds == wd) & np.array([label in ls for ls in labels], bool)
      if not sel.any():
        continue
      keep = sel & ~bad
      mean, lo, hi, n = pooled(np.asarray(llc["llc_mean"])[keep], std[keep], c[keep])
      every = pooled(np.asarray(llc["llc_mean"])[sel], std[sel], c[sel])
      steps = np.asarray(llc["step"])[keep]
      rows.append({"op": op, "weight_decay": wd, "phase": label, "estimates": int(keep.sum()),
                   "left_out": int((sel & bad).sum()),
                   "seeds": len(set(np.asarray(llc["seed"])[keep].tolist())), "chains": n,
                   "steps": (f"{steps.min()}-{steps.max()}" if steps.size else ""),
                   "llc_mean": mean, "ci95_lo": lo, "ci95_hi": hi,
                   **dict(zip(("all_llc_mean", "all_ci95_lo", "all_ci95_hi"), every[:3]))})
  return rows


def memorised_vs_late(llc: dict, metrics: dict, failed=None) -> list[dict]:
  """Per run that grokked: λ̂ at memorised, end and late (NaN where absent or left out),
  whether it fell from memorised to each of the others and whether the fall is resolved.
  `compared` counts the end / late estimates beside a memorised one."""
  labels = row_labels(llc, metrics)
  bad = np.zeros(len(labels), bool) if failed is None else np.asarray(failed, bool)
  run = np.asarray(llc["run"])
  c, m = chains(llc), np.asarray(llc["llc_mean"], np.float64)
  s = np.asarray(llc["llc_std"], np.float64) if "llc_std" in llc else np.full(m.size, np.nan)
  rows = []
  for r in runs_of(llc):
    at = {l: i for i in np.flatnonzero(run == r) for l in labels[i]}
    if "end" not in at:
      continue
    val = {l: m[at[l]] if l in at and not bad[at[l]] else np.nan
           for l in ("memorised", "end", "late")}
    later = [l for l in ("end", "late") if np.isfinite(val[l]) and at[l] != at["memorised"]] \
        if np.isfinite(val["memorised"]) else []
    noise = lambda i: s[i] ** 2 / c[i] if np.isfinite(s[i]) and c[i] > 0 else np.inf
    gap = {l: Z95 * np.sqrt(noise(at["memorised"]) + noise(at[l])) for l in later}
    rows.append({**run_info(llc, r), **{f"llc_{l}": float(v) for l, v in val.items()},
                 "compared": len(later),
                 "falls": bool(later) and all(val[l] < val["memorised"] for l in later),
                 "resolved": bool(later) and all(val["memorised"] - val[l] > gap[l]
                                                 for l in later)})
  return rows


def step_size_text(llc: dict) -> str:
  """The step size of an llc.csv in words: 'ε=4e-06', or for the automatic rule the range
  used, the grid and how many checkpoints had no accepting ε (tables before the rule have
  no step_rule column and one fixed ε)."""
  eps = np.asarray(llc["step_size"], float)
  if "step_rule" not in llc or not np.any(np.asarray(llc["step_rule"]).astype(str) == "auto"):
    return f"ε={eps[0]:g}"
  none = int(np.sum(~np.asarray(llc["autostep_ok"]).astype(bool)))
  return (f"ε per checkpoint {eps.min():g}–{eps.max():g} (the largest accepting of "
          f"{str(llc['step_grid'][0]).replace(';', ', ')}; {none} with none accepting)")
