"""When a trajectory moves: crossings, midpoints and onsets on the log-step axis.

**Log-step axis.** Trajectories are read on u = log10(1 + step): step 0 (the
initialisation) stays on the axis and, beyond a few steps, u is log10(step). A step
"interpolated on log step" is 10**u - 1 with u linearly interpolated between samples.

**Generalisation step** t_gen: the first step at which test accuracy reaches 0.5,
interpolated on u between the last sample below and the first at or above it (NaN if
it never does). After grokking accuracy can collapse and recover; the first crossing
is stable, a value read at a fixed step is not (BUILD_NOTES.md, 'The paper's protocol').

**Transition step of a measure** (the step at which it "moves"). Most measures change
twice: while the network memorises (from initialisation to train accuracy 1) and
around grokking. The question "does simplification lead generalisation?" is about the
second change, so the windowed definitions read the trajectory on the post-memorisation
window [t_fit, end], t_fit = the first evaluation with train accuracy >= 0.99
(`transition(start=t_fit)`); 'half_all' reads the whole run for contrast:
  'half' (primary)   on the window: v_0 = median of its first `n_ends` samples, v_end =
                     median of its last `n_ends` (fewer for trajectories of under 18
                     samples), Δ = v_end - v_0; the first step at which v reaches
                     v_0 + Δ/2 going in the direction of Δ, interpolated on u.
                     "Where it completes half of its post-memorisation change."
  'sigmoid' (check)  on the window: the midpoint u_0 of the least-squares logistic step
                     v ≈ a + b / (1 + exp(-(u - u_0) / w)) on the u axis, fitted by a
                     grid over (u_0, w) with a, b solved exactly at each grid point.
                     Insensitive to where a non-monotone trajectory first crosses.
                     Each sample is weighted by its share of the u axis (`axis_weights`):
                     unweighted, a 100k-step run evaluated every 100 steps has 90 % of
                     its samples in the last decade, and the checkpoints an accuracy
                     trigger saves inside a late loss spike pulled the fitted step there.
  'onset'            on the window: where the change *starts* (`onset`). The plateau
                     level v_0 = median of the window's first `n_plateau` (5) samples
                     (at least 2, at most a quarter of the window); the band around it
                     has half-width max(k_noise sigma, min_frac |Δ|) with k_noise = 4
                     and min_frac = 0.05 (Δ as for 'half'; the floor keeps a noise-free
                     trajectory's onset at 5 % of its change instead of at its first
                     wiggle). The onset is the first sample that starts `sustain` (3)
                     consecutive evaluations all beyond the band on the same side, so
                     an isolated noisy point, or two, never counts. Not interpolated:
                     the departure happened between that sample and the one before,
                     which is the bracket.
  'half_all'         'half' on the whole run from initialisation: it times the
                     memorisation transient for measures whose largest change happens
                     there (e.g. the LLC rises from ~0 while the network fits).
A trajectory whose net change |Δ| (or fitted |b|) is below `min_snr` times its noise
level sigma (from the median absolute successive difference, 1.4826 MAD / sqrt 2) has
no transition (NaN): there is nothing to time.

**Generalisation onset**: 'onset' applied to test accuracy on the same window, for
runs that generalise (test accuracy reaches 0.5; NaN otherwise). Measure onsets are
timed against it, midpoints against t_gen (`leads`).

>>> import numpy as np
>>> steps = np.array([0, 10, 100, 1000, 10000])
>>> round(generalisation_step(steps, np.array([0.0, 0.0, 0.2, 0.8, 1.0])), 1)
317.0
>>> round(transition_step(steps, np.array([5.0, 5.0, 5.0, 1.0, 1.0])), 1)
317.0
>>> v = np.r_[np.full(8, 2.0), np.full(6, 7.0)]          # jumps at the 9th sample
>>> int(transition_step(np.arange(14) * 10, v, method="onset"))
80
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from grokjax.errors import ConfigError

METHODS = ("half", "sigmoid", "onset", "half_all")
WINDOWED = ("half", "sigmoid", "onset")  # read on the post-memorisation window
MIDPOINTS = ("half", "sigmoid", "half_all")  # timed against t_gen; 'onset' against the onset


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


def _ends(v: np.ndarray, n_ends: int) -> tuple[float, float]:
  """(v_0, v_end): medians of the first and last min(n_ends, n // 6) (>= 1) samples."""
  k = max(1, min(n_ends, v.size // 6))  # short trajectories: the end samples themselves
  return float(np.median(v[:k])), float(np.median(v[-k:]))


def half_change(steps, values, *, n_ends: int = 3, min_snr: float = 3.0) -> dict:
  """The 'half' transition: first step with half of the net change done (module doc)."""
  v = np.asarray(values, np.float64)
  start, end = _ends(v, n_ends)
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


def axis_weights(u) -> np.ndarray:
  """Each sample's share of the u axis: half the distance between its neighbours (the
  ends: half the distance to the one neighbour), normalised to sum to 1.

  Evaluations every K steps put 90 % of a run's samples in its last decade, and
  triggered checkpoints cluster inside loss spikes; weighting by u-cell width fits the
  curve on the log-step axis, not where the samples happen to be dense.
  """
  u = np.asarray(u, np.float64)
  if u.size < 2:
    return np.ones(u.shape)
  edges = np.r_[u[0], (u[1:] + u[:-1]) / 2, u[-1]]
  w = np.diff(edges)
  return w / w.sum() if w.sum() > 0 else np.full(u.shape, 1.0 / u.size)


def _logistic_grid(u, v, centres, widths, weights):
  """(sse, b) of the best a + b * logistic((u - c) / w) at each grid point [C, W], in
  least squares weighted by `weights` (summing to 1)."""
  c, w = np.meshgrid(centres, widths, indexing="ij")
  z = np.clip((u[None, None, :] - c[..., None]) / w[..., None], -60, 60)
  g = 1.0 / (1.0 + np.exp(-z))  # [centres, widths, samples]
  g = g - np.sum(weights * g, -1, keepdims=True)
  dv = v - np.sum(weights * v)
  var = np.sum(weights * g**2, -1)
  b = np.where(var > 0, np.sum(weights * g * dv, -1) / np.where(var > 0, var, 1.0), 0.0)
  return np.sum(weights * (dv - b[..., None] * g) ** 2, -1), b


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
  weights = axis_weights(u)
  sse, b = _logistic_grid(u, v, centres, widths, weights)
  i, j = np.unravel_index(np.argmin(sse), sse.shape)
  dc = centres[1] - centres[0] if n_centres > 1 else 0.0
  centres = np.linspace(centres[i] - dc, centres[i] + dc, 41)
  widths = np.geomspace(widths[j] / 1.5, widths[j] * 1.5, 21)
  sse, b = _logistic_grid(u, v, centres, widths, weights)
  i, j = np.unravel_index(np.argmin(sse), sse.shape)
  out = {"step": np.nan, "lo": np.nan, "hi": np.nan, "change": float(b[i, j]), "noise": sigma,
         "width_decades": float(widths[j])}
  if b[i, j] == 0 or abs(b[i, j]) < min_snr * sigma:
    return out
  step = float(from_log_axis(centres[i]))
  lo, hi = _bracket(steps, step)
  return {**out, "step": step, "lo": lo, "hi": hi}


def onset(steps, values, *, n_plateau: int = 5, k_noise: float = 4.0, min_frac: float = 0.05,
          sustain: int = 3, n_ends: int = 3, min_snr: float = 3.0) -> dict:
  """The 'onset' transition: the first sample leaving the plateau band for good (module doc).

  Returns {step, lo, hi, change, noise, plateau, band}; step = hi = the first of the
  `sustain` consecutive samples beyond the band, lo = the sample before it.
  """
  s, v = np.asarray(steps, np.float64), np.asarray(values, np.float64)
  _, end = _ends(v, n_ends)
  k = max(2, min(n_plateau, v.size // 4))
  plateau = float(np.median(v[:k]))
  change, sigma = end - plateau, noise_level(v)
  out = {"step": np.nan, "lo": np.nan, "hi": np.nan, "change": change, "noise": sigma,
         "plateau": plateau, "band": np.nan}
  if not np.isfinite(change) or change == 0 or abs(change) < min_snr * sigma:
    return out
  band = max(k_noise * sigma, min_frac * abs(change))
  side = np.where(v > plateau + band, 1, np.where(v < plateau - band, -1, 0))
  n = v.size - sustain + 1
  if n <= 0:
    return {**out, "band": band}
  win = np.stack([side[j : j + n] for j in range(sustain)])  # [sustain, n]
  hit = np.flatnonzero((win[0] != 0) & np.all(win == win[0], axis=0))
  if not hit.size:
    return {**out, "band": band}
  i = hit[0]
  return {**out, "band": band, "step": float(s[i]), "lo": float(s[max(i - 1, 0)]),
          "hi": float(s[i])}


def generalisation_onset(steps, test_acc, *, start: float | None = None,
                         level: float = 0.5, **kw) -> dict:
  """`onset` of test accuracy on [start, end], for runs whose test accuracy reaches
  `level` (all NaN otherwise: a run that never generalises has no generalisation onset)."""
  nan = {"step": np.nan, "lo": np.nan, "hi": np.nan, "change": np.nan, "noise": np.nan}
  if not np.isfinite(generalisation_step(steps, test_acc, level)):
    return nan
  return transition(steps, test_acc, method="onset", start=start, **kw)


def transition_step(steps, values, *, method: str = "half", **kw) -> float:
  """A measure's transition step by `method` (see METHODS); NaN if it does not move."""
  return transition(steps, values, method=method, **kw)["step"]


def transition(steps, values, *, method: str = "half", start: float | None = None, **kw) -> dict:
  """{step, lo, hi (the samples around it), change, noise} by `method`.

  `start` (the windowed methods only): read the trajectory from this step on; NaN
  (not timed) when it is NaN or leaves fewer than 3 samples.
  """
  fns = {"half": half_change, "sigmoid": sigmoid_fit, "onset": onset, "half_all": half_change}
  if method not in fns:
    raise ConfigError(f"unknown transition method {method!r}; valid: {', '.join(METHODS)}")
  steps, values = np.asarray(steps), np.asarray(values, np.float64)
  if start is not None and method in WINDOWED:
    keep = steps >= start if np.isfinite(start) else np.zeros(steps.shape, bool)
    steps, values = steps[keep], values[keep]
  if steps.size < 3:
    return {"step": np.nan, "lo": np.nan, "hi": np.nan, "change": np.nan, "noise": np.nan}
  return fns[method](steps, values, **kw)
