"""Which saved checkpoints of one run stand for its phases: init, memorised, the jump, late.

From one run's evaluated accuracies (metrics.csv) and its saved checkpoint steps, each
label gets a target step on the log-step axis u = log10(1 + step) (`transitions`), then
snaps to the saved checkpoint nearest on u; labels that snap to the same checkpoint
merge (the checkpoint keeps all of them, in LABELS order).

  init       step 0.
  memorised  the memorisation plateau: evaluations with train accuracy >= 0.99 and test
             accuracy < 0.5, before test accuracy first reaches 0.5 (a loss spike after
             grokking has the same accuracies and must not count; the rule of
             `leads.grokking_change`) and before the generalisation onset. Target: the
             middle of the plateau on u; it snaps to the saved checkpoints inside the
             plateau when there is one.
  onset      the generalisation onset: test accuracy leaving its plateau for good
             (`transitions.generalisation_onset`, on the window after t_fit), never
             after t_gen (on a noisy curve the sustained departure can follow a dip
             past the crossing).
  middle     t_gen, test accuracy crossing 0.5 (`transitions.generalisation_step`).
  end        the first evaluation with test accuracy >= 0.99.
  late       the last saved checkpoint.

A run that never reaches test accuracy 0.5 has no jump: it gets init, memorised and
`n_late` log-spaced `late` points from the memorised target (or t_fit, or the first
saved step) to the last saved checkpoint. A label whose event never happens (no
plateau, no onset, never 0.99) is left out.

>>> import numpy as np
>>> steps = np.arange(0, 1001, 50)
>>> train = np.r_[np.zeros(3), np.ones(18)]                   # fits at 150
>>> test = np.clip((steps - 500) / 300, 0, 1)                 # rises from 550, 1 at 800
>>> phase_steps(steps, train, test, [0, 100, 200, 300, 500, 600, 700, 800, 1000])
{0: ('init',), 300: ('memorised',), 600: ('onset',), 700: ('middle',), 800: ('end',), 1000: ('late',)}
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from grokjax.analysis.tables import first_step_at, nan_if_none, trajectory
from grokjax.analysis.transitions import (from_log_axis, generalisation_onset,
                                          generalisation_step, log_axis)
from grokjax.errors import ConfigError

LABELS = ("init", "memorised", "onset", "middle", "end", "late")
SEP = "+"  # between the labels of one checkpoint in llc.csv's `phase` column
N_LATE = 3  # late points of a run that never generalises
FIT_LEVEL, GEN_LEVEL, GROK_LEVEL = 0.99, 0.5, 0.99


def _nearest(candidates: np.ndarray, target: float) -> int:
  """The candidate step nearest to `target` on u (the earlier one on a tie)."""
  return int(candidates[np.argmin(np.abs(log_axis(candidates) - log_axis(target)))])


def plateau(steps, train_acc, test_acc, *, before: float = np.nan) -> np.ndarray:
  """The evaluated steps on the memorisation plateau (module doc), earlier than `before`."""
  s = np.asarray(steps)
  train, test = np.asarray(train_acc, np.float64), np.asarray(test_acc, np.float64)
  gen = np.flatnonzero(test >= GEN_LEVEL)
  first_gen = s[gen[0]] if gen.size else np.inf
  cut = min(first_gen, before) if np.isfinite(before) else first_gen
  return s[(train >= FIT_LEVEL) & (test < GEN_LEVEL) & (s < cut)]


def phase_targets(steps, train_acc, test_acc, last: int, *, n_late: int = N_LATE
                  ) -> list[tuple[str, float, tuple[float, float] | None]]:
  """(label, target step, the span it must snap into or None) per label that happens."""
  s = np.asarray(steps)
  train, test = np.asarray(train_acc, np.float64), np.asarray(test_acc, np.float64)
  t_fit = nan_if_none(first_step_at(s, train, FIT_LEVEL))
  t_gen = generalisation_step(s, test, GEN_LEVEL)
  onset = generalisation_onset(s, test, start=t_fit, level=GEN_LEVEL)["step"]
  onset = min(onset, t_gen) if np.isfinite(onset) else onset
  out: list[tuple[str, float, tuple[float, float] | None]] = [("init", 0.0, None)]
  flat = plateau(s, train, test, before=onset)
  if flat.size:
    mid = float(from_log_axis(log_axis([flat[0], flat[-1]]).mean()))
    out.append(("memorised", mid, (float(flat[0]), float(flat[-1]))))
  if np.isfinite(t_gen):
    if np.isfinite(onset):
      out.append(("onset", float(onset), None))
    out.append(("middle", float(t_gen), None))
    end = first_step_at(s, test, GROK_LEVEL)
    if end is not None:
      out.append(("end", float(end), None))
    return out + [("late", float(last), None)]
  start = out[-1][1] if flat.size else t_fit if np.isfinite(t_fit) else 0.0
  u = np.linspace(log_axis(start), log_axis(last), n_late + 1)[1:]
  return out + [("late", float(t), None) for t in from_log_axis(u)]


def phase_steps(steps, train_acc, test_acc, saved: Sequence[int], *, n_late: int = N_LATE
                ) -> dict[int, tuple[str, ...]]:
  """{saved step: its labels}, ascending, each label snapped to the nearest saved step."""
  saved = np.unique(np.asarray(saved, np.int64))
  if not saved.size:
    raise ConfigError("no saved checkpoint to pick phase steps from")
  if n_late < 1:
    raise ConfigError(f"n_late must be >= 1, got {n_late}")
  labels: dict[int, list[str]] = {}
  for label, target, span in phase_targets(steps, train_acc, test_acc, int(saved[-1]),
                                           n_late=n_late):
    inside = saved if span is None else saved[(saved >= span[0]) & (saved <= span[1])]
    step = _nearest(inside if inside.size else saved, target)
    if label not in labels.setdefault(step, []):
      labels[step].append(label)
  return {k: tuple(labels[k]) for k in sorted(labels)}


def run_phase_steps(metrics: dict, run: int, saved: Sequence[int], *, n_late: int = N_LATE
                    ) -> dict[int, tuple[str, ...]]:
  """`phase_steps` of one run of a metrics.csv table (train_acc and test_acc columns)."""
  steps, train = trajectory(metrics, run, "train_acc")
  test_steps, test = trajectory(metrics, run, "test_acc")
  if not steps.size or not np.array_equal(steps, test_steps):
    raise ConfigError(f"run {run}: metrics have no evaluations with both train and test "
                      "accuracy to pick phase steps from")
  return phase_steps(steps, train, test, saved, n_late=n_late)


def phase_cell(labels: Sequence[str]) -> str:
  """The `phase` column's text for one checkpoint ('' where it has no label)."""
  return SEP.join(labels)


def cell_labels(cell) -> tuple[str, ...]:
  """The labels of one `phase` cell (as written by `phase_cell`, or read back from CSV)."""
  text = "" if cell is None or (isinstance(cell, float) and np.isnan(cell)) else str(cell)
  return tuple(x for x in text.split(SEP) if x)
