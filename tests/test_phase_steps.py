"""Phase steps of one run on planted accuracies: where each label lands, and merging."""

import numpy as np
import pytest

from grokjax.analysis import generalisation_onset
from grokjax.analysis import phase_steps as ps
from grokjax.errors import ConfigError
from tests.analysis_planted import logistic

STEPS = np.arange(0, 5001, 50)  # evaluated every 50 steps
SAVED = [0, 1, 10, 100, 200, 400, 600, 800, 1000, 1200, 1500, 2000, 2500, 3000, 4000, 5000]


def grokking(gen=1500.0):
  """Train accuracy fits by ~250; test accuracy sits at ~0.01, then rises around `gen`."""
  return logistic(STEPS, 150.0, 0.05), logistic(STEPS, gen, 0.04, lo=0.01)


def labelled(steps_labels):
  return {label: s for s, labels in steps_labels.items() for label in labels}


def test_a_grokking_run_gets_every_label_on_its_own_checkpoint():
  train, test = grokking()
  got = ps.phase_steps(STEPS, train, test, SAVED)
  at = labelled(got)
  assert list(at) == list(ps.LABELS)
  assert at["init"] == 0 and at["late"] == 5000
  # memorised: on the plateau (train >= 0.99, test < 0.5), near its middle on log step
  fit = STEPS[np.argmax(train >= 0.99)]
  assert fit <= at["memorised"] < at["onset"] and test[STEPS == at["memorised"]] < 0.1
  assert at["onset"] < at["middle"] < at["end"] < at["late"]
  assert at["middle"] == 1500  # test crosses 0.5 at 1500, a saved step
  assert test[STEPS == at["end"]] >= 0.9  # first >= 0.99 evaluation, snapped
  assert all(len(v) == 1 for v in got.values())


def test_the_memorised_label_is_the_plateaus_log_middle():
  train, test = grokking(gen=4000.0)
  fit = STEPS[np.argmax(train >= 0.99)]
  onset = generalisation_onset(STEPS, test, start=fit)["step"]
  flat = ps.plateau(STEPS, train, test, before=onset)
  assert flat[0] == fit and flat[-1] < onset < 4000
  mid = np.sqrt((1 + flat[0]) * (1 + flat[-1])) - 1
  every = STEPS.tolist()  # every evaluation saved: the snap is the nearest one
  at = labelled(ps.phase_steps(STEPS, train, test, every))
  assert abs(np.log10((1 + at["memorised"]) / (1 + mid))) < 0.01


def test_a_run_that_never_generalises_gets_late_points_instead_of_the_jump():
  train, _ = grokking()
  test = np.full(STEPS.shape, 0.02)
  got = ps.phase_steps(STEPS, train, test, SAVED)
  labels = [l for ls in got.values() for l in ls]
  assert {"onset", "middle", "end"}.isdisjoint(labels)
  assert labels[:2] == ["init", "memorised"] and labels.count("late") == ps.N_LATE
  late = [s for s, ls in got.items() if "late" in ls]
  assert late[-1] == 5000 and min(late) > labelled(got)["memorised"]
  gaps = np.diff(np.log10(1 + np.array([labelled(got)["memorised"], *late])))
  assert gaps.max() < 2.5 * gaps.min()  # roughly log-spaced


def test_labels_that_snap_to_one_checkpoint_merge_and_keep_every_label():
  train, test = grokking(gen=1500.0)
  sparse = [0, 1000, 5000]
  got = ps.phase_steps(STEPS, train, test, sparse)
  assert set(got) <= set(sparse)
  assert sorted(l for ls in got.values() for l in ls) == sorted(ps.LABELS)
  assert got[0] == ("init",) and "late" in got[5000]
  assert any(len(ls) > 1 for ls in got.values())
  for ls in got.values():  # merged labels keep LABELS order
    assert list(ls) == sorted(ls, key=ps.LABELS.index)
  assert ps.cell_labels(ps.phase_cell(got[1000])) == got[1000]


def test_the_onset_never_comes_after_the_crossing_on_a_noisy_jump():
  # a rise, a dip, then the jump: test accuracy leaves its band for good only after 0.5
  steps = np.arange(0, 901, 50)
  train = np.r_[np.zeros(6), np.ones(13)]
  test = np.r_[np.full(6, 0.01), 0.03, 0.06, 0.23, 0.43, 0.23, 0.99, 0.99, 1, 0.93, 1, 1, 1, 1]
  assert generalisation_onset(steps, test, start=300)["step"] > 500  # past t_gen ~517
  at = labelled(ps.phase_steps(steps, train, test, steps.tolist()))
  assert at["onset"] <= at["middle"] == 500 < at["end"] == 550


def test_memorised_snaps_inside_the_plateau_when_a_checkpoint_is_there():
  train, test = grokking(gen=1500.0)
  flat = ps.plateau(STEPS, train, test)
  # the plateau's log middle is nearest to 10, outside it; 1000 is the saved step inside
  got = labelled(ps.phase_steps(STEPS, train, test, [0, 10, 1000, 5000]))
  assert flat[0] <= got["memorised"] <= flat[-1]


def test_run_phase_steps_reads_a_metrics_table_and_refuses_bad_input():
  train, test = grokking()
  metrics = {"run": np.full(STEPS.size, 3), "step": STEPS, "train_acc": train, "test_acc": test}
  assert ps.run_phase_steps(metrics, 3, SAVED) == ps.phase_steps(STEPS, train, test, SAVED)
  with pytest.raises(ConfigError, match="run 4"):
    ps.run_phase_steps(metrics, 4, SAVED)
  with pytest.raises(ConfigError, match="no saved checkpoint"):
    ps.phase_steps(STEPS, train, test, [])
  assert ps.cell_labels("") == () and ps.cell_labels(np.nan) == ()
