"""Figures of the SLT lens: the LLC over training, sampler calibration, rescaling invariance.

`llc_over_training` draws llc.csv through `measures.trajectories` (λ̂ with its ± std
band over chains, under test accuracy; estimates that failed their diagnostics hollow);
`calibration` draws the arrays `grokjax.slt.calibration.calibrate` returns (the chains' traces per setting and λ̂
against the step size); `invariance` draws one sampler's rows of llc_invariance.csv
as heat maps over log α × log β.

>>> # llc_over_training(runio.read_csv("runs/demo/llc.csv"), metrics, "runs/demo/llc")
"""

from __future__ import annotations

import numpy as np

from grokjax import analysis
from grokjax.analysis import llc_phases
from grokjax.figures import measures, style
from grokjax.figures.style import plt


def first_sampler(llc: dict) -> dict:
  """The rows of llc.csv's first sampler (a table may hold several per step)."""
  sel = llc["sampler"].astype(str) == str(llc["sampler"][0])
  return {k: np.asarray(v)[sel] for k, v in llc.items()}


def diag_failed(llc: dict) -> np.ndarray | None:
  """Per row, whether the estimate failed its sampler diagnostics (diag_ok false).

  None where the table has no diag_ok column. Reads the column as written (bool) and
  as read back from CSV ('True' / 'False', or 1 / 0).
  """
  if "diag_ok" not in llc:
    return None
  ok = np.asarray(llc["diag_ok"])
  if ok.dtype.kind in "OUS":
    return np.array([str(v).strip().lower() not in ("true", "1") for v in ok])
  return ~ok.astype(bool)


def llc_over_training(llc: dict, metrics: dict | None, stem, *,
                      gen_steps: dict[int, float] | None = None):
  """λ̂ (mean ± std over chains) against step beside test accuracy; [png, pdf].

  `metrics` None: λ̂ alone. Only the first sampler of the table is drawn; the title
  gives its settings. Where the table has diag_ok, estimates that failed their
  diagnostics are drawn hollow, the others filled.
  """
  llc = first_sampler(llc)
  failed = diag_failed(llc)
  if failed is not None:
    llc = {**llc, "diag_failed": failed.astype(np.float64)}
  g = lambda k: llc[k][0]
  title = (f"LLC, sampler {g('sampler')}, {llc_phases.step_size_text(llc)}, "
           f"γ={g('localization'):g}, "
           f"nβ={g('nbeta'):.4g}")
  return measures.trajectories([(llc, "llc_mean", "LLC λ̂ (mean ± std over chains)")], metrics,
                               stem, gen_steps=gen_steps, title=title,
                               spread={"llc_mean": "llc_std"},
                               hollow=None if failed is None else {"llc_mean": "diag_failed"})


def calibration(out: dict[str, np.ndarray], stem, title: str = ""):
  """Traces nβ·(L_m(w_t) − L_n(w*)) per setting (a grid of panels) and λ̂ vs step size.

  `out`: the arrays `calibrate` returns (step_size, localization, nbeta, loss/trace
  [settings, chains, draws], loss/init, llc/mean, llc/std, diverged/count).
  """
  steps, gams, nbs = (np.unique(out[k]) for k in ("step_size", "localization", "nbeta"))
  rows = [(g, b) for b in nbs for g in gams]
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(len(rows), len(steps) + 1, squeeze=False,
                             figsize=(2.6 * (len(steps) + 1), 2.0 * len(rows)))
    for i in range(len(out["step_size"])):
      r = rows.index((out["localization"][i], out["nbeta"][i]))
      c = int(np.searchsorted(steps, out["step_size"][i]))
      _trace_panel(axes[r, c], out, i)
      if c == 0:
        _summary_panel(axes[r, -1], out, i)
    fig.suptitle(title or "SGLD calibration: nβ·(L_m(w_t) − L_n(w*)) per chain", fontsize=9)
    fig.tight_layout()
    return style.save(fig, stem)


def _trace_panel(ax, out: dict, i: int) -> None:
  trace = out["nbeta"][i] * (out["loss/trace"][i] - out["loss/init"][i])
  ax.plot(trace.T, lw=0.6)
  ax.set_title(f"ε={out['step_size'][i]:.1e} γ={out['localization'][i]:g}\n"
               f"λ̂={out['llc/mean'][i]:.3g} div={int(out['diverged/count'][i])}", fontsize=7)
  if np.all(np.isfinite(trace)):
    lo, hi = np.percentile(trace, [1, 99])
    ax.set_ylim(min(lo, 0.0), hi + 0.1 * (hi - lo) + 1e-9)


def _summary_panel(ax, out: dict, i: int) -> None:
  sel = (out["localization"] == out["localization"][i]) & (out["nbeta"] == out["nbeta"][i])
  ax.errorbar(out["step_size"][sel], out["llc/mean"][sel], out["llc/std"][sel], marker="o",
              ms=3, lw=1)
  ax.set_xscale("log")
  ax.set_title(f"λ̂ vs ε (γ={out['localization'][i]:g}, nβ={out['nbeta'][i]:.3g})", fontsize=7)


def log_edges(centres: np.ndarray) -> np.ndarray:
  """Cell edges for log-spaced centres (geometric midpoints, ends mirrored)."""
  logc = np.log(centres)
  if len(logc) == 1:
    return np.exp(logc[0] + np.array([-0.5, 0.5]))
  mid = (logc[1:] + logc[:-1]) / 2
  return np.exp(np.concatenate([[2 * logc[0] - mid[0]], mid, [2 * logc[-1] - mid[-1]]]))


def invariance(table: dict, stem, *, sampler: str | None = None, title: str = ""):
  """Heat maps over log α × log β of one sampler's llc_invariance.csv rows; [png, pdf].

  Left λ̂, right init_loss_change = L_n(rescaled w*) − L_n(w*). Only where the second
  map is ~0 is the rescaled model the same function, so only there does a change of
  λ̂ measure the sampler rather than the model. `sampler` None: the table's first.
  """
  sampler = str(table["sampler"][0]) if sampler is None else sampler
  t = {k: np.asarray(v)[table["sampler"].astype(str) == sampler] for k, v in table.items()}
  alphas, betas = np.unique(t["alpha"]), np.unique(t["beta"])
  z, dz = _on_grid(t, "llc_mean", alphas, betas), _on_grid(t, "init_loss_change", alphas, betas)
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.0))
    for ax, grid, label, cmap in ((axes[0], z, "λ̂", "viridis"),
                                  (axes[1], dz, "L_n(rescaled w*) − L_n(w*)", "coolwarm")):
      _heat_map(fig, ax, grid, alphas, betas, label, cmap)
    finite = z[np.isfinite(z)]
    spread = (f"λ̂ in [{finite.min():.3g}, {finite.max():.3g}]" if finite.size
              else "all diverged")
    info = analysis.run_info(t, int(t["run"][0]))
    head = title or (f"{sampler} (ε={t['step_size'][0]:g}, γ={t['localization'][0]:g}), "
                     f"{info['op']} wd {info['weight_decay']:g} seed {info['seed']}, "
                     f"step {int(t['step'][0])}")
    axes[0].set_title(f"{head}\n{spread}")
    axes[1].set_title("change of the initial loss (0: same function)")
    fig.tight_layout()
    return style.save(fig, stem)


def _on_grid(t: dict, column: str, alphas, betas) -> np.ndarray:
  """[len(α), len(β)] of a column, NaN where the table has no row."""
  grid = np.full((len(alphas), len(betas)), np.nan)
  grid[np.searchsorted(alphas, t["alpha"]), np.searchsorted(betas, t["beta"])] = t[column]
  return grid


def _heat_map(fig, ax, grid, alphas, betas, label: str, cmap: str) -> None:
  lim = np.nanmax(np.abs(grid)) if cmap == "coolwarm" else None
  mesh = ax.pcolormesh(log_edges(betas), log_edges(alphas), grid, cmap=cmap,
                       vmin=-lim if lim else None, vmax=lim)
  ax.set_xscale("log")  # matplotlib's own labels: a grid may span less than a decade
  ax.set_yscale("log")
  ax.set_xlabel("β (MLP: fc_in ×β, fc_out ×1/β)")
  ax.set_ylabel("α (residual stream)")
  fig.colorbar(mesh, ax=ax, label=label)
  if max(grid.shape) <= 8:
    for i, a in enumerate(alphas):
      for j, b in enumerate(betas):
        ax.text(b, a, f"{grid[i, j]:.3g}", ha="center", va="center", fontsize=6,
                color="w" if cmap == "viridis" else "k")
