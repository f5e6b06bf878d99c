"""The checkpoint schedule: scheduled steps, metric triggers, the disk budget, exact resume."""

import dataclasses
import pathlib

import jax
import numpy as np
import pytest

from grokjax import checkpoint, ckpt_schedule, runio, sweep
from grokjax.ckpt_schedule import Sizes, Tracker, Trigger, should_save, simulate
from grokjax.config import PRESETS
from grokjax.errors import ConfigError

METRICS = ckpt_schedule.ACC_METRICS + ckpt_schedule.LOSS_METRICS


def test_cpu_presets_keep_their_fixed_schedules():
  assert sorted(ckpt_schedule.scheduled(PRESETS["tiny"])) == [
      0, 1, 2, 3, 4, 7, 12, 19, 31, 250, 500, 750, 1000, 1250, 1500]
  assert sorted(ckpt_schedule.scheduled(PRESETS["cpu-quick"])) == [
      0, 1, 2, 3, 6, 10, 18, 32, 56, 200, 400, 600, 800, 1000, 1200]
  for name in ("tiny", "demo", "cpu-quick"):
    assert not Trigger.of(PRESETS[name]).on and not PRESETS[name].max_checkpoint_gb


def test_paper_schedule_is_log_spaced_and_fits_its_budget():
  cfg = PRESETS["paper"]
  steps = sorted(ckpt_schedule.scheduled(cfg))
  assert steps[0] == 0 and steps[-1] == 100_000 and 60 <= len(steps) <= 100
  ratios = np.diff(np.log([s for s in steps if s >= 100]))
  assert ratios.max() < 1.05 * ratios.min()  # evenly spaced on a log axis
  sizes = Sizes.of(cfg)
  assert 26e6 < sizes.params < 28e6  # 16 runs x 1.7 MB
  allowance = ckpt_schedule.trigger_allowance(cfg, sizes)
  total = ckpt_schedule.fixed_schedule_bytes(cfg, sizes) + allowance * sizes.params
  assert allowance > 50 and total <= cfg.max_checkpoint_gb * 1e9 < total + sizes.params


def moves(**now):
  last = {k: np.zeros(2) for k in METRICS}
  last["train_loss"] = last["test_loss"] = np.ones(2)
  return last, {**last, **{k: np.asarray(v, float) for k, v in now.items()}}


def test_should_save_on_accuracy_and_log_loss_moves_of_any_run():
  assert should_save(*moves(test_acc=[0.0, 0.06]), Trigger(acc=0.05))
  assert not should_save(*moves(test_acc=[0.0, 0.04]), Trigger(acc=0.05))
  assert should_save(*moves(train_acc=[-0.06, 0.0]), Trigger(acc=0.05))  # either direction
  assert not should_save(*moves(test_acc=[0.0, 0.5]), Trigger(loss=0.5))  # acc trigger off
  assert should_save(*moves(test_loss=[1.0, np.exp(-0.6)]), Trigger(loss=0.5))
  assert not should_save(*moves(train_loss=[1.0, np.exp(0.4)]), Trigger(loss=0.5))
  assert not should_save(*moves(test_acc=[np.nan, 0.0], train_loss=[np.nan, 1.0]),
                         Trigger(acc=0.05, loss=0.5))  # a diverged run never triggers
  assert not should_save(*moves(test_acc=[1.0, 1.0]), Trigger())


def planted(steps):
  """Three runs: run 1 memorises near step 300 and generalises near 3,000, run 2 is flat."""
  sig = lambda c, w: 1 / (1 + np.exp(-(steps - c) / w))
  train = np.stack([np.full_like(steps, 0.5), sig(300, 20), np.full_like(steps, 0.2)], 1)
  test = np.stack([np.full_like(steps, 0.3), sig(3000, 60), np.full_like(steps, 0.1)], 1)
  loss = np.ones_like(train)
  return [dict(train_acc=a, test_acc=b, train_loss=l, test_loss=l)
          for a, b, l in zip(train, test, loss)]


def test_planted_transitions_are_saved_densely_within_the_budget():
  cfg = dataclasses.replace(PRESETS["tiny"], steps=10_000, eval_every=10, ckpt_every=0,
                            ckpt_log_points=8, ckpt_trigger_acc=0.05)
  sizes = Sizes(params=1000, state=3000)
  stops = sorted(set(range(0, 10_001, 10)) | ckpt_schedule.scheduled(cfg))
  metrics = planted(np.asarray(stops, float))
  # Enough room for both transitions (24 triggers): every unsaved stop lies within
  # the threshold of the last save, for every run.
  roomy = dataclasses.replace(cfg, max_checkpoint_gb=100_000 / 1e9)
  allowance = ckpt_schedule.trigger_allowance(roomy, sizes)
  saved = simulate(stops, metrics, Tracker(frozenset(ckpt_schedule.scheduled(cfg)),
                                           Trigger(acc=0.05), allowance))
  assert set(ckpt_schedule.scheduled(cfg)) <= set(saved)
  last = None
  for s, m in zip(stops, metrics):
    if s in saved:
      last = m
    else:
      assert np.abs(m["test_acc"] - last["test_acc"]).max() <= 0.05
      assert np.abs(m["train_acc"] - last["train_acc"]).max() <= 0.05
  in_window = lambda lo, hi: sum(lo <= s <= hi for s in saved)
  roomy_second = in_window(2700, 3300)
  assert in_window(200, 400) >= 8 and roomy_second >= 12
  assert in_window(4000, 9_999) == 0  # nothing moves there, and no log step falls in it
  # A budget with room for 15 triggers: the first transition takes 9, the second gets
  # the rest, the scheduled steps are all kept and the total stays under the budget.
  budget = ckpt_schedule.fixed_schedule_bytes(cfg, sizes) + 15 * sizes.params + 500
  tight = dataclasses.replace(cfg, max_checkpoint_gb=budget / 1e9)
  tracker = Tracker(frozenset(ckpt_schedule.scheduled(cfg)), Trigger(acc=0.05),
                    ckpt_schedule.trigger_allowance(tight, sizes))
  saved = simulate(stops, metrics, tracker)
  assert tracker.triggered == 15 and tracker.refused > 0
  assert set(ckpt_schedule.scheduled(cfg)) <= set(saved) and saved[-1] == 10_000
  assert len(saved) * sizes.params + 2 * sizes.state <= budget
  assert in_window(200, 400) >= 8 and 3 <= in_window(2700, 3300) < roomy_second


def test_resumed_tracker_continues_as_the_uninterrupted_one():
  cfg = dataclasses.replace(PRESETS["tiny"], steps=5000, eval_every=10, ckpt_every=1000,
                            ckpt_trigger_acc=0.05)
  stops = sorted(set(range(0, 5001, 10)) | ckpt_schedule.scheduled(cfg))
  metrics = planted(np.asarray(stops, float))
  fresh = lambda: Tracker(frozenset(ckpt_schedule.scheduled(cfg)), Trigger(acc=0.05), 30)
  whole = simulate(stops, metrics, fresh())
  for start in (whole[3], whole[len(whole) // 2], whole[-2]):
    k = stops.index(start)
    resumed = fresh().resumed([s for s in whole if s <= start], start, metrics[k])
    assert whole == [s for s in whole if s <= start] + simulate(stops[k + 1:], metrics[k + 1:],
                                                               resumed)


def test_budget_too_small_for_the_schedule_is_one_line(tmp_path):
  cfg = dataclasses.replace(PRESETS["tiny"], max_checkpoint_gb=0.001)
  with pytest.raises(ConfigError, match="the checkpoint schedule needs .* GB .* "
                     "max_checkpoint_gb is 0.001") as info:
    sweep.train_sweep(cfg, tmp_path / "run", write=lambda s: None)
  assert "\n" not in str(info.value) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("change, message", [
    (dict(ckpt_trigger_acc=-0.1), "ckpt_trigger_acc must be finite and > 0"),
    (dict(ckpt_trigger_loss=float("nan")), "ckpt_trigger_loss must be finite and > 0"),
    (dict(max_checkpoint_gb=-1.0), "max_checkpoint_gb must be finite and >= 0"),
    (dict(ckpt_log_points=-3), "ckpt_log_points must be an integer >= 0"),
    (dict(ckpt_every=-1), "ckpt_every must be an integer >= 0"),
])
def test_bad_checkpoint_settings_are_refused(change, message):
  with pytest.raises(ConfigError, match=message):
    dataclasses.replace(PRESETS["tiny"], **change).validate()


# ---------------------------------------------------------------- a real sweep

class Interrupt(Exception):
  pass


def stop_at(step):
  def on_stop(s):
    if s == step:
      raise Interrupt
  return on_stop


def read(out):
  m = runio.read_csv(pathlib.Path(out) / "metrics.csv")
  order = np.lexsort((m["run"], m["step"]))
  return {k: v[order] for k, v in m.items()}


@pytest.fixture(scope="module")
def triggered(tmp_path_factory):
  """A tiny sweep with log-spaced and triggered saves under a budget that runs out."""
  base = dataclasses.replace(PRESETS["tiny"], steps=200, eval_every=10, ckpt_every=0,
                             ckpt_log_points=3, ckpt_trigger_acc=0.05, ckpt_trigger_loss=0.05)
  sizes = Sizes.of(base)
  budget = ckpt_schedule.fixed_schedule_bytes(base, sizes) + 3.5 * sizes.params
  cfg = dataclasses.replace(base, max_checkpoint_gb=budget / 1e9)
  out = tmp_path_factory.mktemp("triggered")
  lines = []
  sweep.train_sweep(cfg, out, write=lines.append)
  return cfg, out, lines


def test_sweep_saves_what_the_pure_schedule_says_within_the_budget(triggered):
  cfg, out, lines = triggered
  saved = checkpoint.list_steps(out)
  m = read(out)
  stops = sorted(set(m["step"].tolist()))
  per_stop = [{k: m[k][m["step"] == s] for k in METRICS} for s in stops]
  allowance = ckpt_schedule.trigger_allowance(cfg, Sizes.of(cfg))
  tracker = Tracker(frozenset(sweep.schedule(cfg)[1]), Trigger.of(cfg), allowance)
  assert saved == simulate(stops, per_stop, tracker)
  assert allowance == tracker.triggered == 3 and tracker.refused > 0
  assert sum("budget is spent" in l for l in lines) == 1
  used = sum(f.stat().st_size for f in (out / "checkpoints").rglob("*") if f.is_file())
  assert used <= cfg.max_checkpoint_gb * 1e9


def test_interrupted_triggered_sweep_resumes_to_the_same_steps_and_numbers(tmp_path, triggered):
  cfg, ref, _ = triggered
  saved = checkpoint.list_steps(ref)
  scheduled = sweep.schedule(cfg)[1]
  trig = [s for s in saved if s not in scheduled]
  stops = sorted(set(read(ref)["step"].tolist()))
  unsaved = [s for s in stops if s not in saved]
  # right after a triggered save, at a stop without one, after the budget ran out
  kills = sorted({trig[1], next(s for s in unsaved if s > trig[2]), unsaved[-2]})
  quiet = dict(write=lambda s: None)
  with pytest.raises(Interrupt):
    sweep.train_sweep(cfg, tmp_path, on_stop=stop_at(kills[0]), **quiet)
  for k in kills[1:]:
    with pytest.raises(Interrupt):
      sweep.train_sweep(cfg, tmp_path, resume=True, on_stop=stop_at(k), **quiet)
  sweep.train_sweep(cfg, tmp_path, resume=True, **quiet)
  assert checkpoint.list_steps(tmp_path) == saved
  a, b = read(tmp_path), read(ref)
  for k in ("step", "run", *METRICS, "param_norm"):
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  pa, pb = (checkpoint.load_stacked_params(d, cfg.steps) for d in (tmp_path, ref))
  jax.tree.map(np.testing.assert_array_equal, pa, pb)


def test_flags_set_the_schedule_and_bad_values_are_one_line():
  import types

  from grokjax.cli import SWEEP_LIST_FLAGS, SWEEP_SCALAR_FLAGS, sweep_config_from_flags

  def flags(**given):
    names = [*SWEEP_LIST_FLAGS, *SWEEP_SCALAR_FLAGS, "lr", "train_frac"]
    return types.SimpleNamespace(**{**{n: None for n in names}, **given})

  cfg = sweep_config_from_flags(flags(ckpt_every=0, ckpt_log_points=5, ckpt_trigger_acc=0.1,
                                      max_checkpoint_gb=2.0), "tiny")
  assert (cfg.ckpt_every, cfg.ckpt_log_points, cfg.ckpt_trigger_acc, cfg.max_checkpoint_gb) == (
      0, 5, 0.1, 2.0)
  with pytest.raises(ConfigError, match="ckpt_trigger_acc must be finite and > 0"):
    sweep_config_from_flags(flags(ckpt_trigger_acc=-0.05), "paper")
