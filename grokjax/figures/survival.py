"""Grok time as survival data: Kaplan-Meier curves of the fraction not yet grokked.

Draws `analysis.survival_curves(metrics)` as step functions (`where="post"`): one
line per op x weight decay (colour = op, line style = weight decay), the fraction
of runs that have not yet reached test accuracy 0.99 against step on a log axis
(step 0 at 1), its pointwise 95 % interval shaded, and a '+' where a run was
censored (it had not grokked by its last evaluation).

>>> # km_curves(analysis.survival_curves(metrics), "runs/demo/survival")
"""

from __future__ import annotations

import numpy as np

from grokjax.figures import style
from grokjax.figures.style import plt


def _label(c: dict) -> str:
  extra = [f"{k} {c[k]:g}" for k in ("lr", "train_frac") if k in c]
  return ", ".join([f"{c['op']} wd {c['weight_decay']:g}", *extra])


def km_curves(curves: list[dict], stem, title: str = ""):
  """Kaplan-Meier fraction not yet grokked against step per group; [png, pdf]."""
  ops = list(dict.fromkeys(c["op"] for c in curves))
  wds = sorted({c["weight_decay"] for c in curves})
  with plt.rc_context(style.RC):
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    for c in curves:
      colour = style.op_colour(c["op"], ops.index(c["op"]))
      ls = style.SEED_STYLES[wds.index(c["weight_decay"]) % len(style.SEED_STYLES)]
      x = np.maximum(c["step"], 1)
      ax.step(x, c["survival"], where="post", color=colour, ls=ls, lw=1.4, label=_label(c))
      ax.fill_between(x, np.nan_to_num(c["ci_lo"], nan=0.0), np.nan_to_num(c["ci_hi"], nan=0.0),
                      step="post", color=colour, alpha=0.12, lw=0)
      if len(c["censored_step"]):
        ax.plot(np.maximum(c["censored_step"], 1), c["censored_survival"], "+", color=colour,
                ms=8, mew=1.2, ls="none")
    style.step_axis(ax)
    ax.set_ylim(-0.02, 1.05)
    ax.set_ylabel("fraction not yet grokked (test acc < 0.99)")
    ax.set_title(title or "Grok time, Kaplan-Meier (+: censored at the budget)")
    ax.legend(loc="lower left")
    fig.tight_layout()
    return style.save(fig, stem)
