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
