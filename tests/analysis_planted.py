"""Planted trajectories and tidy tables shared by the analysis and report tests."""

import numpy as np

STEPS = np.unique(np.r_[0, np.round(np.geomspace(1, 30000, 70))]).astype(np.int64)


def logistic(steps, centre, width=0.1, lo=0.0, hi=1.0):
  u = np.log10(1.0 + steps)
  return lo + (hi - lo) / (1.0 + np.exp(-(u - np.log10(1.0 + centre)) / width))


def synthetic_tables(grok=(1000, 1400), leads=(("early", 0.3), ("late", -0.25)),
                     ops=("add", "sub"), wds=(1.0,), noise=0.0, seed=0):
  """metrics.csv- and measures.csv-like tidy tables with planted transitions.

  Test accuracy crosses 0.5 at grok[seed index] * op factor; measure `name` makes a
  falling logistic step `lead` decades before (positive) or after that step.
  """
  rng = np.random.default_rng(seed)
  m, q = {}, {}
  run = 0
  for op_i, op in enumerate(ops):
    for wd in wds:
      for s_i, g in enumerate(grok):
        g = g * (1 + 0.5 * op_i) if wd > 0 else 1e9
        fit = logistic(STEPS, 40.0, 0.1)
        rows = {"run": run, "op": op, "seed": 42 + s_i, "weight_decay": wd, "lr": 1e-3,
                "train_frac": 0.5}
        cols = {"train_acc": fit, "test_acc": logistic(STEPS, g, 0.08),
                "train_loss": 1 - fit, "test_loss": 2 - logistic(STEPS, g, 0.08)}
        for k, v in {**rows, "step": STEPS, **cols}.items():
          m.setdefault(k, []).append(np.broadcast_to(v, STEPS.shape))
        ck = STEPS[::3]
        u_g = np.log10(1 + g)
        mcols = {name: logistic(ck, 10 ** (u_g - lead) - 1, 0.1, 5.0, 2.0)
                 + noise * rng.normal(size=ck.size) for name, lead in leads}
        mcols["flat"] = 3.0 + 0.01 * rng.normal(size=ck.size)
        for k, v in {**rows, "step": ck, **mcols}.items():
          q.setdefault(k, []).append(np.broadcast_to(v, ck.shape))
        run += 1
  cat = lambda d: {k: np.concatenate(v) if not isinstance(v[0][0], str) else
                   np.concatenate(v).astype(object) for k, v in d.items()}
  return cat(m), cat(q)


# ---------------------------------------------------------------- 100k-step runs

def tidy(runs):
  """[(run fields, steps, {column: values})] -> one tidy table (a metrics.csv-like dict)."""
  cols = {}
  for info, steps, values in runs:
    for k, v in {**info, "step": steps, **values}.items():
      cols.setdefault(k, []).append(np.broadcast_to(v, np.shape(steps)))
  return {k: np.concatenate(v).astype(object) if isinstance(v[0][0], str) else np.concatenate(v)
          for k, v in cols.items()}


def paper_stops():
  """(the paper preset's evaluation stops, its scheduled checkpoints): every 100 steps to
  100,000, log-spaced early ones, and 80 log-spaced checkpoints (metrics.csv has a row at
  every checkpoint, so measures.csv's irregular steps are all evaluation steps)."""
  from grokjax import sweep
  from grokjax.config import PRESETS

  stops, ckpts = sweep.schedule(PRESETS["paper"])
  return np.asarray(stops, np.int64), ckpts


def spike(steps, values, at, level, n_evals=2):
  """values with the `n_evals` evaluations from step `at` on set to `level` (a slingshot)."""
  i = np.searchsorted(steps, at)
  out = np.array(values, np.float64)
  out[i : i + n_evals] = level
  return out


def long_run(steps, *, grok, fit=300.0, width=0.06, spikes=(), collapse=None, noise=0.0,
             seed=0, lead=0.3):
  """One 100k-step run's curves: metrics columns and the measure 'early'.

  Train accuracy rises at `fit` (0.99 by ~1.4 fit), test accuracy at `grok` (t_gen; a
  logistic of `width` decades on log step, 0.99 by grok * 10**(4.6 width); None: never,
  a plateau at 0.02), plus `noise` below 0.5; each spike (step, n_evals) drops train and test accuracy
  to 0.3 for n_evals evaluations and throws the measures back to their memorisation values
  for one more (where test accuracy is back, train accuracy at 0.9); `collapse` (from, to)
  holds test accuracy at 0.05 in between (re-grokking at `to`). param_norm decays from 60
  to 20 over about two decades centred at 3 * grok (a slow weight-norm decay);
  'early' falls from 5 to 2 `lead` decades before `grok`.
  """
  rng = np.random.default_rng(seed)
  train = logistic(steps, fit, 0.03, 0.05, 1.0)
  if grok is None:
    test = np.full(steps.shape, 0.02)
  else:
    test = logistic(steps, grok, width, 0.02, 1.0)
  test = np.clip(test + noise * rng.normal(size=steps.size) * (test < 0.5), 0.0, 1.0)
  norm = logistic(steps, 3 * (grok or 1e9), 0.5, 60.0, 20.0)
  early = logistic(steps, 10 ** (np.log10(1 + (grok or 1e9)) - lead) - 1, 0.05, 5.0, 2.0)
  if collapse is not None:
    down = (steps >= collapse[0]) & (steps < collapse[1])
    test, early = np.where(down, 0.05, test), np.where(down, 5.0, early)
  for at, n in spikes:
    # one more evaluation on the way back: test accuracy has recovered, train has not
    train = spike(steps, train, at, 0.9, n + 1)
    norm, early = spike(steps, norm, at, 80.0, n + 1), spike(steps, early, at, 5.0, n + 1)
    train, test = spike(steps, train, at, 0.3, n), spike(steps, test, at, 0.3, n)
  return {"train_acc": train, "test_acc": test, "train_loss": 1.001 - train,
          "test_loss": 3.001 - 3 * test, "param_norm": norm, "early": early}


def long_tables(runs, *, trigger_acc=0.05):
  """(metrics, measures) of a planted 100k-step sweep: `runs` = [(run fields, long_run
  kwargs)]. measures.csv holds 'early' at the steps a paper-preset sweep would save: the
  scheduled log-spaced ones and those the accuracy trigger adds (ckpt_schedule.simulate
  over every run's metrics at once, as the sweep decides), dense around every transition
  and every spike."""
  from grokjax import ckpt_schedule

  stops, ckpts = paper_stops()
  info = lambda f: {"lr": 1e-3, "train_frac": 0.3, **f}
  curves = [long_run(stops, **kw) for _, kw in runs]
  per_stop = [{k: np.array([c[k][i] for c in curves]) for k in ckpt_schedule.ACC_METRICS
               + ckpt_schedule.LOSS_METRICS} for i in range(stops.size)]
  tracker = ckpt_schedule.Tracker(frozenset(ckpts), ckpt_schedule.Trigger(acc=trigger_acc))
  saved = np.isin(stops, ckpt_schedule.simulate(stops.tolist(), per_stop, tracker))
  metrics = tidy([(info(f), stops, {k: v for k, v in c.items() if k != "early"})
                  for (f, _), c in zip(runs, curves)])
  measures = tidy([(info(f), stops[saved], {"early": c["early"][saved]})
                   for (f, _), c in zip(runs, curves)])
  return metrics, measures
