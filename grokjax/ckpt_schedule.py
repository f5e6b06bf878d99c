"""When a sweep saves its parameters: scheduled steps, metric triggers and a disk budget.

A sweep (grokjax.sweep) saves every run's parameters at once (they are stacked) at a
stop point that is *scheduled* or *triggered* (SweepConfig fields):
  fixed    step 0, the last step and, with `ckpt_every` > 0, its multiples and
           `log_points` log-spaced steps before the first of them (`ckpt_every=0`:
           only step 0 and the last); or the explicit `ckpt_steps` and the last step;
  log      `ckpt_log_points` log-spaced steps over [1, steps], so the count grows with
           the log of the training length;
  trigger  an evaluation stop where some run's train or test accuracy has moved by more
           than `ckpt_trigger_acc`, or its train or test loss by more than
           `ckpt_trigger_loss` in natural-log units, since the last saved step (None: off),
           so the memorisation and generalisation transitions are saved densely
           wherever they fall.
With `max_checkpoint_gb` > 0 the scheduled part (and the two kept TrainStates) must fit,
else ConfigError before training; a trigger is refused once saving it would leave too
little room for the scheduled steps still to come, so the total stays under budget.

Every decision is a pure function of the config and the metrics, so a resumed sweep
rebuilds its trigger state from metrics.csv and the saved steps (`Tracker.resumed`) and
saves exactly the steps an uninterrupted one would.

>>> sorted(log_steps(100, 4))
[1, 3, 10, 32]
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from grokjax.config import SweepConfig
from grokjax.errors import ConfigError

ACC_METRICS = ("train_acc", "test_acc")
LOSS_METRICS = ("train_loss", "test_loss")
STATE_KEPT = 2  # the state/ manager keeps the latest two TrainStates (to resume)
# orbax metadata a saved step adds to its arrays (measured 12 KB for the tiny model's
# params, 45 KB for its TrainState); zstd makes paper-size arrays 5-10 % smaller than
# raw, so raw bytes plus this are an upper bound
OVERHEAD_BYTES = 64 * 1024
GB = 1e9  # max_checkpoint_gb is in decimal gigabytes


def log_steps(upto: int, n: int) -> set[int]:
  """n log-spaced integer steps in [1, upto) (rounding merges the early ones)."""
  if n <= 0 or upto <= 1:
    return set()
  return {int(s) for s in np.unique(np.round(np.geomspace(1, upto, n + 1)[:-1]))}


def fixed_steps(cfg: SweepConfig) -> set[int]:
  """Step 0, the last step, and the multiples of ckpt_every with their early log points;
  or the explicit `ckpt_steps` and the last step."""
  if cfg.ckpt_steps:
    return {s for s in cfg.ckpt_steps if s <= cfg.steps} | {cfg.steps}
  ckpts = {0, cfg.steps}
  if cfg.ckpt_every > 0:
    ckpts |= set(range(cfg.ckpt_every, cfg.steps, cfg.ckpt_every))
    ckpts |= {s for s in log_steps(min(cfg.ckpt_every, cfg.eval_every), cfg.log_points)
              if s < cfg.steps}
  return ckpts


def scheduled(cfg: SweepConfig) -> set[int]:
  """Every step saved whatever the metrics: the fixed part and the log part."""
  return fixed_steps(cfg) | log_steps(cfg.steps, cfg.ckpt_log_points)


@dataclasses.dataclass(frozen=True)
class Trigger:
  """Thresholds on the change since the last saved step; None turns one off."""

  acc: float | None = None  # absolute change of train or test accuracy
  loss: float | None = None  # absolute change of ln(train or test loss)

  @classmethod
  def of(cls, cfg: SweepConfig) -> "Trigger":
    return cls(cfg.ckpt_trigger_acc, cfg.ckpt_trigger_loss)

  @property
  def on(self) -> bool:
    return self.acc is not None or self.loss is not None


def should_save(last: dict[str, np.ndarray], now: dict[str, np.ndarray],
                trigger: Trigger) -> bool:
  """Whether some run moved past a threshold between the saved metrics `last` and `now`.

  `last` and `now` map metric names to [runs] arrays. A non-finite value never
  triggers (a diverged run would otherwise save at every stop).

  >>> should_save({"train_acc": np.array([0.1, 0.5]), "test_acc": np.array([0.0, 0.0])},
  ...             {"train_acc": np.array([0.1, 0.56]), "test_acc": np.array([0.0, 0.0])},
  ...             Trigger(acc=0.05))
  True
  """
  moved = []
  with np.errstate(divide="ignore", invalid="ignore"):
    if trigger.acc is not None:
      moved += [np.abs(np.asarray(now[k]) - np.asarray(last[k])) > trigger.acc
                for k in ACC_METRICS]
    if trigger.loss is not None:
      moved += [np.abs(np.log(np.asarray(now[k])) - np.log(np.asarray(last[k]))) > trigger.loss
                for k in LOSS_METRICS]
  return bool(moved) and bool(np.any(np.concatenate([np.ravel(m) for m in moved])))


# ---------------------------------------------------------------- disk

@dataclasses.dataclass(frozen=True)
class Sizes:
  """Bytes on disk of one saved step of every run's params, and of one TrainState."""

  params: int
  state: int

  @classmethod
  def of(cls, cfg: SweepConfig) -> "Sizes":
    """From the model's and optimizer's shapes (jax.eval_shape: nothing is computed)."""
    import jax

    from grokjax.train import init_state, run_hypers

    hypers = {k: v[0] for k, v in run_hypers(cfg.runs[:1]).items()}
    one = jax.eval_shape(lambda: init_state(cfg, jax.random.key(0), **hypers))
    nbytes = lambda t: sum(math.prod(a.shape) * a.dtype.itemsize for a in jax.tree.leaves(t))
    n = len(cfg.runs)
    return cls(params=n * nbytes(one.params) + OVERHEAD_BYTES,
               state=n * nbytes(one) + OVERHEAD_BYTES)


def fixed_schedule_bytes(cfg: SweepConfig, sizes: Sizes) -> int:
  """Disk use of the scheduled steps plus the kept TrainStates."""
  return len(scheduled(cfg)) * sizes.params + STATE_KEPT * sizes.state


def trigger_allowance(cfg: SweepConfig, sizes: Sizes) -> int | None:
  """How many triggered saves fit in max_checkpoint_gb beside the scheduled ones.

  None without a budget. Every save has the same size, so refusing a trigger once
  this many were saved is refusing one whose bytes would eat into the room the
  scheduled steps still to come need. Raises ConfigError when the schedule alone
  does not fit.
  """
  if not cfg.max_checkpoint_gb:
    return None
  budget = int(cfg.max_checkpoint_gb * GB)
  need = fixed_schedule_bytes(cfg, sizes)
  if need > budget:
    raise ConfigError(
        f"the checkpoint schedule needs {need / GB:.3g} GB ({len(scheduled(cfg))} steps x "
        f"{sizes.params / 1e6:.3g} MB + {STATE_KEPT} x {sizes.state / 1e6:.3g} MB of state) but "
        f"max_checkpoint_gb is {cfg.max_checkpoint_gb:g}; raise it or save fewer steps "
        "(ckpt_every, ckpt_log_points)")
  return (budget - need) // sizes.params


# ---------------------------------------------------------------- the decision at a stop

@dataclasses.dataclass
class Tracker:
  """The save decision at each stop: scheduled, or triggered within the allowance.

  `last` holds each metric's [runs] values at the last saved step (None before the
  first save), `triggered` the number of triggered saves so far.
  """

  ckpts: frozenset[int]
  trigger: Trigger
  allowance: int | None = None
  last: dict[str, np.ndarray] | None = None
  triggered: int = 0
  refused: int = 0  # triggers the budget refused

  def decide(self, step: int, metrics: dict[str, np.ndarray]) -> bool:
    """Whether to save at `step`, given every run's metrics there; records a save."""
    save = step in self.ckpts
    if not save and self.trigger.on and self.last is not None:
      if should_save(self.last, metrics, self.trigger):
        if self.allowance is None or self.triggered < self.allowance:
          save, self.triggered = True, self.triggered + 1
        else:
          self.refused += 1
    if save:
      self.last = {k: np.asarray(metrics[k], np.float64) for k in ACC_METRICS + LOSS_METRICS}
    return save

  def resumed(self, saved: list[int], start: int, metrics: dict[str, np.ndarray]) -> "Tracker":
    """The tracker of an uninterrupted sweep just after it saved `start`.

    `saved`: the saved steps up to `start`; `metrics`: every run's metrics at `start`
    (metrics.csv's rows there, which hold the values the decisions used).
    """
    done = {s for s in saved if s <= start} | {start}
    return dataclasses.replace(
        self, last={k: np.asarray(metrics[k], np.float64) for k in ACC_METRICS + LOSS_METRICS},
        triggered=len(done - self.ckpts))


def simulate(stops: list[int], metrics: list[dict[str, np.ndarray]], tracker: Tracker
             ) -> list[int]:
  """The steps a sweep with these metrics at these stops saves (a fresh `tracker`)."""
  return [s for s, m in zip(stops, metrics) if tracker.decide(s, m)]
