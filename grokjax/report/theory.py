"""Report sections of the complexity theories: the LLC (SLT) and the surrogate (Figs. 6-7).

The LLC section reads llc.csv and llc_invariance.csv; the surrogate section reads the
surrogate/ folder (config.json, summary.csv, maps.npz). Figures come from
`grokjax.figures`; nothing is recomputed.
"""

from __future__ import annotations

import json

import numpy as np

from grokjax.analysis import llc_phases
from grokjax.errors import RunFolderError
from grokjax.figures import slt as slt_figures
from grokjax.figures.slt import diag_failed
from grokjax.figures import surrogate as surrogate_figures
from grokjax.report import tables as tables_lib
from grokjax.report.claims import llc_left_out
from grokjax.report.context import Ctx

def _saturation_note(llc: dict) -> str:
  """How many LLC estimates came from chains that sampled near-chance models."""
  if "saturated" not in llc:
    return "saturation not recorded (llc.csv predates the check)"
  n = int(np.sum(llc["saturated"]))
  if not n:
    return ("no saturated estimate (no chain went from a better-than-chance checkpoint to a "
            "mean loss >= 0.9 ln p)")
  return (f"**{n} of {len(llc['saturated'])} estimates saturated**: the chains sampled models "
          "near chance (mean loss >= 0.9 ln p), so there λ̂ ≈ nβ (ln p - L_n(w*)) reflects "
          "the training loss, not the local geometry; calibrate the sampler")



def _diagnostics_note(llc: dict) -> str:
  """How many estimates failed their sampler diagnostics, and that the claim leaves them out."""
  if "diag_ok" not in llc:
    return "sampler diagnostics not recorded (llc.csv predates them)"
  text = llc_left_out({"llc": llc})
  if not text:
    return "every estimate passed its sampler diagnostics (grokjax.slt.llc.DIAG_THRESHOLDS)"
  return (f"**{text}**, drawn hollow; the claims, leads and correlations use only the "
          "estimates that passed (thresholds: grokjax.slt.llc.DIAG_THRESHOLDS)")


def section_llc(ctx: Ctx) -> None:
  r = ctx.report
  r.heading("6. Local learning coefficient (SLT)")
  llc = ctx.tables["llc"]
  if llc is None:
    r.text("Not measured: the llc stage did not run (llc.csv is absent).")
  else:
    paths = slt_figures.llc_over_training(llc, ctx.tables["metrics"], ctx.fig_dir / "fig6_llc",
                                          gen_steps=ctx.res.gen_steps)
    g = lambda k: llc[k][0]
    ctx.fig(paths, ctx.cap(
        "LLC estimate λ̂ = nβ (E[L_m(w)] - L_n(w*)) at checkpoints against step, beside test "
        "accuracy, on each run's training split.",
        f"sampler {g('sampler')}, {llc_phases.step_size_text(llc)}, "
        f"localisation {g('localization'):g}, "
        f"nβ {g('nbeta'):.4g}, {g('num_chains')} chains x {g('num_draws')} draws "
        f"({g('num_burnin')} burn-in), batch {g('batch_size')}; "
        f"{int(np.sum(llc['diverged']))} diverged chains in total; "
        f"{_saturation_note(llc)}; {_diagnostics_note(llc)}"))
    _phase_table(ctx, llc)
  inv = ctx.tables["llc_invariance"]
  if inv is None:
    r.text("Not measured: sampler invariance (llc_invariance.csv is absent).")
    return
  rows = []
  for sampler in dict.fromkeys(inv["sampler"].astype(str).tolist()):
    sel = inv["sampler"].astype(str) == sampler
    paths = slt_figures.invariance(inv, ctx.fig_dir / f"fig6_invariance_{sampler}",
                                   sampler=sampler)
    z = inv["llc_mean"][sel]
    same = np.abs(inv["init_loss_change"][sel]) < SAME_FUNCTION
    rows.append({"sampler": sampler, **_spread(z, "all"), **_spread(z[same], "same_fn"),
                 "diverged": int(inv["diverged"][sel].sum())})
    i0 = np.flatnonzero(sel)[0]
    ctx.fig(paths, ctx.cap(
        f"LLC of one trained model under function-preserving rescalings (α on the residual "
        f"stream, β paired on the MLP), sampler {sampler}: an invariant estimator gives one "
        "colour everywhere (GELU makes the β direction only approximately function-preserving: "
        "see init_loss_change in llc_invariance.csv).",
        f"{int(sel.sum())} grid points, same chain keys at every point, step size "
        f"{inv['step_size'][i0]:g}, localisation {inv['localization'][i0]:g}",
        runs=f"run {int(inv['run'][0])} ({inv['op'][0]}, wd {inv['weight_decay'][0]:g}, seed "
             f"{inv['seed'][0]}) at step {int(inv['step'][0])}"))
  r.table("llc_invariance", rows, caption=(
      "Spread of λ̂ over the rescaling grid per sampler: over every grid point (`all_`) and over "
      f"the points where the rescaled model is still the same function, |change of the initial "
      f"loss| < {SAME_FUNCTION} nats (`same_fn_`); cv = std / |mean|. Only the second measures "
      "the sampler rather than the model."))


def _phase_table(ctx: Ctx, llc: dict) -> None:
  how = ("each run's `phase` column" if "phase" in llc else
         "labels put on the measured steps by analysis.phase_steps (llc.csv predates the phase "
         "column, so a label sits on the measured step nearest to it)")
  ctx.report.table("llc_phases", llc_phases.phase_summary(llc, ctx.tables["metrics"],
                                                          diag_failed(llc)), caption=(
      "λ̂ per op x weight decay x phase (init; memorised: the memorisation plateau's middle; "
      "onset: test accuracy starts to rise; middle: test accuracy crosses 0.5; end: first "
      "evaluation with test accuracy >= 0.99; late: the last checkpoint, or for a run that "
      f"never generalises log-spaced points after memorised), from {how}. `llc_mean` pools "
      "the chains of every seed's estimate; ci95 = mean +- 1.96 sd / sqrt(chains), sd the "
      "pooled spread of the chains about it (a normal interval, optimistic with few chains); "
      "estimates that failed their diagnostics are left out (`left_out`); the all_ columns "
      "pool every estimate, failed ones too, and are no measurement where those failed."))


SAME_FUNCTION = 0.05  # nats: a rescaling that moves the initial loss less keeps the function


def _spread(z: np.ndarray, prefix: str) -> dict:
  z = z[np.isfinite(z)]
  if not z.size:
    return {f"{prefix}_points": 0}
  return {f"{prefix}_points": int(z.size), f"{prefix}_llc_min": float(z.min()),
          f"{prefix}_llc_max": float(z.max()),
          f"{prefix}_max_over_min": float(z.max() / z.min()) if z.min() > 0 else np.nan,
          f"{prefix}_cv": float(z.std() / abs(z.mean()))}


def section_surrogate(ctx: Ctx) -> None:
  r = ctx.report
  r.heading("7. The theory surrogate (Singular Feature Machine with an Occam Gate)")
  folder = ctx.run_dir / "surrogate"
  if ctx.tables["surrogate"] is None:
    r.text("Not measured: the surrogate stage did not run (surrogate/surrogate.csv is absent).")
    return
  scfg = json.loads((folder / "config.json").read_text())["config"]
  runs = (f"the SFM grid in surrogate/: ops {', '.join(scfg['ops'])}, p = {scfg['p']}, penalties "
          f"{', '.join(f'{x:g}' for x in scfg['penalties'])}, seeds "
          f"{', '.join(str(x) for x in scfg['seeds'])}, {scfg['steps']} steps")
  sets = f"lr {scfg['lr']:g}, train fraction {scfg['train_frac']:g} (surrogate/config.json)"
  try:
    _surrogate_figures(ctx, folder, runs, sets)
  except RunFolderError as e:  # an older surrogate folder: say so, keep its table
    r.text(f"Figures not drawn: {e}.")
  summary = tables_lib.read_if(folder / "summary.csv")
  if summary is not None:
    rows = [{k: tables_lib.py(summary[k][i]) for k in summary} for i in range(len(summary["op"]))]
    r.table("surrogate_summary", rows, caption=(
        "Per SFM run (grokjax.surrogate.results.summarize): memorisation and generalisation "
        "steps, the complexity proxy λ_A at start, memorisation and end, and reference values "
        "(p²/2, n/2, (p-1)/2, p/2)."))


def _surrogate_figures(ctx: Ctx, folder, runs: str, sets: str) -> None:
  stem = lambda name: ctx.fig_dir / f"fig7_sfm_{name}"
  figs = [(surrogate_figures.figure5(folder, stem("figure5")), "The paper's Fig. 5 in our terms "
           "(a documented reconstruction of the SFM): left, test accuracy (green) against the "
           "complexity proxies (red: the learning coefficient of the active set λ_A and the "
           "spectral entropy of the learned table) on a log step axis; right, log spectral power "
           "of the learned table in the group's Fourier basis at init, memorisation, switch and "
           "the end."),
          (surrogate_figures.penalty_sweep(folder, stem("penalty_sweep")), "Test accuracy and "
           "λ_A against step for each Occam-gate penalty η, and the delay and final λ_A against "
           "η.")]
  comp = surrogate_figures.comparison(folder, ctx.run_dir, stem("comparison"))
  if comp is not None:
    figs.append((comp, "The surrogate's normalised proxies (left) next to the transformer "
                       "proxies of this run folder (right), both beside test accuracy."))
  for paths, what in figs:
    ctx.fig(paths, ctx.cap(what, sets, runs=runs))
