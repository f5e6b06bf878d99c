"""Report sections of the analysis: header and claims, grokking (Fig. 1), leads, correlations.

The header states where the numbers come from (config.json's provenance, the timings
and the lens plan from plan.json) and sets the paper's claims against this folder;
the others draw and tabulate `claims.analyse`'s results.
"""

from __future__ import annotations

import json

from grokjax import plan as plan_lib
from grokjax import analysis
from grokjax.figures import measures as measure_figures
from grokjax.figures import survival as survival_figures
from grokjax.figures import training
from grokjax.report import tables as tables_lib
from grokjax.report.claims import claim_rows, lead_sentences
from grokjax.report.context import Ctx, runs_phrase

def section_grokking(ctx: Ctx) -> None:
  r = ctx.report
  r.heading("1. Grokking curves (paper Fig. 1)")
  paths = training.curves(ctx.tables["metrics"], ctx.fig_dir / "fig1_curves",
                          grok_rows=ctx.res.grok)
  ctx.fig(paths, ctx.cap(
      "Train (dashed) and test (solid) accuracy and cross-entropy loss against training step "
      "(log axis), full train and test splits, one colour per seed; dotted vertical lines: the "
      "grokking step (test accuracy first >= 0.99 at an evaluation).",
      f"evaluated every {ctx.cfg['eval_every']} steps plus {ctx.cfg['log_points']} log-spaced "
      "early steps"))
  r.table("grokking", ctx.res.grok, caption=(
      "Per run: first evaluated step with train / test accuracy >= 0.99 (n/a: never), their "
      "difference, the generalisation step t_gen (test accuracy first reaches 0.5, interpolated "
      "on log step) and the final accuracies."),
      columns=("op", "weight_decay", "seed", "train_acc_099_step", "test_acc_099_step",
               "delay_steps", "gen_step", "final_train_acc", "final_test_acc", "final_step"))


def section_survival(ctx: Ctx) -> None:
  """Grok time as right-censored data: Kaplan-Meier curves and the median grok step."""
  r = ctx.report
  r.heading("Grok time as survival data")
  metrics = ctx.tables["metrics"]
  paths = survival_figures.km_curves(analysis.survival_curves(metrics),
                                     ctx.fig_dir / "fig1_survival")
  ctx.fig(paths, ctx.cap(
      "Kaplan-Meier estimate of the fraction of runs not yet grokked (test accuracy < 0.99 at "
      "every evaluation so far) against step (log axis), one line per op (colour) x weight "
      "decay (line style), shaded: pointwise log-log 95 % interval; '+': a run censored at its "
      "last evaluation without grokking.", "grok time = first evaluated step with test "
      "accuracy >= 0.99 (analysis.survival_curves)"))
  r.table("survival", analysis.survival_table(metrics), caption=(
      "Per group (its runs differ by seed): runs, events (grokked), censored runs, the "
      "Kaplan-Meier median grok step with its Brookmeyer-Crowley 95 % interval (n/a: not "
      "reached within the budget; an n/a upper end: the interval is open), the budget (last "
      "evaluated step) and the fraction grokked by it. Unlike a mean over the runs that "
      "grokked, the censored runs count."))


def section_leads(ctx: Ctx) -> None:
  r = ctx.report
  r.heading("8. Beyond the paper: does simplification lead or follow generalisation?")
  r.text(
      "Most measures change twice: while the network memorises (initialisation to train "
      "accuracy 1) and around grokking. The question is about the second change, so for each "
      "run and measure the transition step is where the measure completes half of its change "
      "between t_fit (train accuracy first >= 0.99) and the end of the run, on a log-step axis "
      "(medians of the first and of the last samples of that window as its ends; primary, "
      "'half'); as a robustness check, the midpoint of a least-squares logistic step on the "
      "same window ('sigmoid'); and, for contrast, 'half' over the whole run from "
      "initialisation ('half_all', which times the memorisation transient when that is the "
      "larger change). The generalisation step t_gen is where test accuracy first reaches 0.5 "
      "(interpolated on log step). Lead = t_gen - t_measure (steps; positive: the measure moves "
      "first) and log10 of their ratio (decades); mean and percentile-bootstrap 95 % interval "
      "over seeds per op and weight decay (with two seeds the interval is the span of the two "
      "values). A run's order counts as 'before' only when the measure was already past half "
      "its change at a checkpoint where test accuracy was still below 0.5 (and 'after' "
      "symmetrically); otherwise the checkpoints cannot order them ('with'). A group's verdict "
      "needs every timed seed to agree ('mixed' otherwise). A measure whose change is below 3x "
      "its noise level is not timed.")
  r.text(lead_sentences(ctx.res.leads, tables_lib.labels()))
  for method, name in (("half", "fig8_lead_ranking"), ("sigmoid", "fig8_lead_ranking_sigmoid"),
                       ("half_all", "fig8_lead_ranking_whole_run")):
    paths = measure_figures.lead_ranking(ctx.res.leads, ctx.fig_dir / name, method=method)
    ctx.fig(paths, ctx.cap(
        f"Measures ranked by lead over generalisation ({method} transition definition): group "
        "mean over seeds of log10(t_gen / t_measure) with its bootstrap 95 % interval, per op "
        "(colour) and weight decay (panel).", "analysis.transition_table / lead_summary, "
        "2000 bootstrap resamples"))
  cols = ("op", "weight_decay", "measure", "method", "n_runs", "n_timed", "seeds", "lead_mean",
          "lead_ci_lo", "lead_ci_hi", "lead_decades_mean", "n_before", "n_with", "n_after",
          "verdict")
  shown = [x for x in ctx.res.leads if x["n_timed"] > 0]
  r.table("lead_summary", ctx.res.leads, columns=cols, shown=shown, caption=(
      "Lead of each measure over t_gen per op x weight decay and method (groups where no run "
      "was timed are left out; the CSV has every group)."))
  r.table("lead_times", ctx.res.transitions, columns=(
      "op", "weight_decay", "seed", "measure", "method", "fit_step", "transition_step", "gen_step",
      "lead_steps", "lead_decades", "order", "bracket_lo", "bracket_hi"),
      caption="Per run: the transition and generalisation steps behind the summary.")


def section_correlations(ctx: Ctx) -> None:
  r = ctx.report
  r.heading("9. Correlation of each measure with test accuracy")
  r.table("correlations", ctx.res.correlations, columns=(
      "op", "weight_decay", "measure", "n_runs", "spearman_mean", "spearman_min", "spearman_max",
      "per_seed"), caption=(
      "Spearman rank correlation of each measure with test accuracy over each run's trajectory "
      "(the checkpoints where the measure was taken), mean / min / max over seeds."))
  r.table("grokking_change", ctx.res.changes, columns=(
      "op", "weight_decay", "seed", "measure", "plateau", "after", "change", "rel_change"),
      caption=("Each measure on the memorisation plateau (train accuracy >= 0.99, test < 0.5) "
               "and after grokking (train and test accuracy >= 0.99), medians over checkpoints."))


def diverged_text(diverged: list[dict]) -> str:
  """'**Diverged runs** ...: run 3 (mul seed 42 wd 1) diverged at step 840; left out ...'."""
  runs = "; ".join(f"run {d['run']} ({d['op']} seed {d['seed']} wd {d['weight_decay']:g} lr "
                   f"{d['lr']:g}) diverged at step {d['diverged_at']}" for d in diverged)
  return (f"**Diverged runs** (non-finite loss; summary.csv `diverged_at`): {runs}. Left out of "
          "every table, figure and claim below; their rows stay in the run folder's CSV files.")


def section_header(ctx: Ctx) -> None:
  r, p = ctx.report, ctx.prov
  v = p["versions"]
  r.text(
      f"Run folder `{ctx.run_dir}`, trained {p['created']} on {', '.join(p['devices'][:2])}"
      f"{' ...' if len(p['devices']) > 2 else ''} at commit `{p['commit']}` (jax {v.get('jax')}, "
      f"flax {v.get('flax')}, optax {v.get('optax')}, pybdm {v.get('pybdm')}). Sweep: "
      f"{runs_phrase(ctx.cfg)}. Every number below was computed from this folder's tables by "
      "`grokjax.report.build_report`; nothing is tuned to match the paper.")
  if ctx.diverged:
    r.text(diverged_text(ctx.diverged))
  r.heading("Summary: the paper's claims against this run", 2)
  r.table("reproduction_status", claim_rows(ctx.tables, ctx.res), caption=(
      "Each claim, what this run measured and whether it agrees. 'Through grokking' compares the "
      "median of a measure on the memorisation plateau with its median after grokking, over "
      "the runs that grokked."), columns=("claim", "status", "measured"))
  timings = ctx.run_dir / "reproduce_timings.json"
  if timings.is_file():
    t = json.loads(timings.read_text())
    r.table("timings", [{"stage": k, **v} for k, v in t.items()], caption=(
        "Wall-clock seconds of each stage when it last computed (re-runs reuse finished stages)."))
  if ctx.plan is not None:
    r.table("plan", [{"setting": k, "value": str(v)}
                     for k, v in plan_lib.to_dict(ctx.plan).items()],
            caption=f"The lens plan the pipeline ran ({plan_lib.PLAN_FILE}; the presets' plans "
                    "are grokjax.plan.PLANS).")
