"""Crossings, midpoints ('half', 'sigmoid') and onsets on planted trajectories."""

import numpy as np
import pytest

from grokjax import analysis
from tests.analysis_planted import STEPS, logistic, synthetic_tables


def test_generalisation_step_interpolates_on_log_steps():
  steps = np.array([0, 10, 100, 1000, 10000])
  acc = np.array([0.0, 0.0, 0.2, 0.8, 1.0])
  assert analysis.generalisation_step(steps, acc) == pytest.approx(np.sqrt(101 * 1001) - 1)
  assert np.isnan(analysis.generalisation_step(steps, np.full(5, 0.3)))
  assert analysis.generalisation_step(steps, np.full(5, 0.9)) == 0.0
  # first crossing is kept even if accuracy collapses afterwards
  acc = np.array([0.0, 0.6, 0.1, 0.1, 1.0])
  assert analysis.generalisation_step(steps, acc) < 10


@pytest.mark.parametrize("method", analysis.MIDPOINTS)
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


def test_windowed_methods_time_the_post_memorisation_change():
  # a large rise while the network memorises (step ~30), then a smaller fall at ~1500
  v = 10 * logistic(STEPS, 30.0) - 2 * logistic(STEPS, 1500.0)
  assert analysis.transition_step(STEPS, v, method="half_all") < 60
  for method in ("half", "sigmoid"):
    assert analysis.transition_step(STEPS, v, method=method, start=100) == pytest.approx(
        1500, rel=0.05)
  assert np.isnan(analysis.transition_step(STEPS, v, method="half", start=np.nan))
  assert np.isnan(analysis.transition_step(STEPS, v, method="half", start=STEPS[-2]))
  m, q = synthetic_tables(ops=("add",))
  fits = analysis.fit_steps(m)
  assert all(64 <= f < 130 for f in fits.values())  # 0.99 at step ~64; next sample 119


# ---------------------------------------------------------------- onsets

def test_onset_of_a_logistic_is_where_it_has_made_5_percent_of_its_change():
  # noise-free: the band is the 5 % floor, so the onset is the first sample past the
  # logistic's 5 % point u_0 - w ln 19 (decades), and the steps after it stay beyond
  u0, w = np.log10(1 + 1500.0), 0.1
  v = logistic(STEPS, 1500.0, w, 5.0, 2.0)
  t = analysis.transition(STEPS, v, method="onset")
  u5 = u0 - w * np.log(19)
  u = np.log10(1 + STEPS)
  assert np.min(np.abs(u - u5)) > 0.005  # no sample sits on the boundary
  expected = STEPS[u > u5][0]
  assert t["step"] == expected and t["hi"] == expected
  assert t["lo"] == STEPS[np.flatnonzero(STEPS == expected)[0] - 1]
  assert t["band"] == pytest.approx(0.05 * 3.0, rel=1e-4) and t["noise"] < 0.15 / 4
  assert t["step"] < analysis.transition_step(STEPS, v, method="half")  # starts before its middle


def noisy_step(jump_at, *, spikes=(), sigma=0.02, seed=0, n=60, lo=1.0, hi=2.0):
  """n samples at steps 10 i: lo + noise, hi + noise from index jump_at; + spikes."""
  steps = 10 * np.arange(n)
  v = np.where(np.arange(n) >= jump_at, hi, lo) + sigma * np.random.default_rng(seed).normal(
      size=n)
  for i, size in spikes:
    v[i] += size
  return steps, v


def test_noisy_plateau_with_spikes_does_not_trigger():
  # one spike, two consecutive spikes and one on the other side: none lasts 3 evaluations
  spikes = ((10, 0.8), (20, 0.8), (21, 0.8), (30, -0.8))
  steps, v = noisy_step(10**9, spikes=spikes)
  assert np.isnan(analysis.transition_step(steps, v, method="onset"))  # no net change
  steps, v = noisy_step(40, spikes=spikes)  # the real step at index 40
  t = analysis.transition(steps, v, method="onset")
  assert t["step"] == 400 and (t["lo"], t["hi"]) == (390, 400)
  assert t["band"] == pytest.approx(4 * t["noise"]) and 0.04 < t["band"] < 0.15
  # three consecutive spikes are a departure, however short
  steps, v = noisy_step(40, spikes=((20, 0.8), (21, 0.8), (22, 0.8)))
  assert analysis.transition_step(steps, v, method="onset") == 200
  # the sustained run must stay on one side: up, down, up is not a departure
  steps, v = noisy_step(40, spikes=((20, 0.8), (21, -0.8), (22, 0.8)))
  assert analysis.transition_step(steps, v, method="onset") == 400


def test_onset_on_the_window_and_too_short_trajectories():
  steps, v = noisy_step(40)
  v[:8] += 5.0  # a memorisation transient before the window
  assert analysis.transition_step(steps, v, method="onset") == 80  # whole run: falls at 80
  assert analysis.transition_step(steps, v, method="onset", start=100) == 400
  s, v = np.arange(4) * 10, np.array([0.0, 0.0, 0.0, 1.0])
  assert np.isnan(analysis.transition_step(s, v, method="onset"))  # fewer than 3 beyond


def test_generalisation_onset_needs_generalisation():
  steps, acc = noisy_step(40, lo=0.02, hi=1.0, sigma=0.0)
  assert analysis.generalisation_onset(steps, acc, start=50)["step"] == 400
  steps, acc = noisy_step(40, lo=0.02, hi=0.4, sigma=0.0)  # moves, never reaches 0.5
  assert np.isnan(analysis.generalisation_onset(steps, acc, start=50)["step"])
