"""Report sections of the structural lenses: causal heads, Fourier, BDM, geometry (Figs. 2-5).

Each section reads the run folder's tables (causal.csv, causal_ablation.csv,
measures.csv) and snapshots.npz through its `Ctx`, draws with `grokjax.figures` and
adds headings, figures and tables to the report; a lens that did not run is said
to be "Not measured".
"""

from __future__ import annotations

from grokjax.figures import causal as causal_figures
from grokjax.figures import measures as measure_figures
from grokjax.report import tables as tables_lib
from grokjax.report.context import Ctx

def section_causal(ctx: Ctx) -> None:
  causal, ablation = ctx.tables["causal"], ctx.tables["causal_ablation"]
  r = ctx.report
  r.heading("2. Causal mediation and head ablation (paper Fig. 2)")
  if causal is None:
    r.text("Not measured: the causal stage did not run (causal.csv is absent).")
    return
  steps = sorted(set(causal["step"].tolist()))
  for op in dict.fromkeys(causal["op"].astype(str).tolist()):
    paths = causal_figures.patching_grid(causal, op, ctx.fig_dir / f"fig2_causal_{op}",
                                         metric="logit_diff")
    ctx.fig(paths, ctx.cap(
        f"Activation patching, {op}: change in logit[corrupt answer] - logit[clean answer] when "
        "one head's output at the answer position is replaced by its output on the corrupted "
        "prompt (same x, different y), mean over prompt pairs and over seeds; rows weight decay, "
        f"columns checkpoints {steps}.",
        f"{ctx.setting('causal_pairs')} prompt pairs per run, "
        "sampled from all (x, y) of the task"))
  if ablation is not None:
    for op in dict.fromkeys(ablation["op"].astype(str).tolist()):
      paths = causal_figures.ablation_curves(ablation, op, ctx.fig_dir / f"fig2_ablation_{op}")
      ctx.fig(paths, ctx.cap(
          f"Cumulative head ablation, {op}: accuracy on test examples as heads are zero-ablated "
          "in order of patching importance (solid) or in random orders (mean and band).",
          f"ablation mode {ablation['ablation'][0]}, "
          f"{int(ablation['order_index'].max()) + 1} random orders"))
  summary = ctx.tables["causal_summary"]
  rows = [{k: tables_lib.py(summary[k][i]) for k in ("op", "weight_decay", "seed", "step",
                                              "causal/top_head_share", "causal/max_abs_effect")}
          for i in range(len(summary["run"]))]
  r.table("causal_concentration", rows, caption=(
      "Per run and checkpoint: the largest head's share of the summed |logit-diff effect| over "
      "heads (1/heads when every head matters equally, 1 when one head carries everything)."))




def _basis_note(ctx: Ctx) -> str:
  ops = ctx.cfg["ops"]
  dl = [o for o in ops if o in ("mul", "div")]
  return (" Rows are residues in natural order for add/sub" +
          (f" and by discrete logarithm (a generator of Z_p^*) for {', '.join(dl)}" if dl else "")
          + ".")


def section_fourier(ctx: Ctx) -> None:
  r = ctx.report
  r.heading("3. Group structure and Fourier localisation (paper Fig. 3)")
  seed = ctx.cfg["seeds"][0]
  for kind, name, what in (("embedding", "fig3a_embedding_fourier", "on the plane (cos, sin "
                            "coefficients) of their strongest Fourier frequency k"),
                           ("pca", "fig3a_embedding_pca", "on their top two principal components")):
    snaps = ctx.snapshots(kind)
    if not snaps:
      r.text(f"Not measured: snapshots.npz is absent ({kind} figure).")
      continue
    paths = measure_figures.snapshots(snaps, ctx.fig_dir / name, kind="embedding")
    ctx.fig(paths, ctx.cap(
        f"Number embeddings (rows of tok_embed for the p residues, centred) {what}, at four "
        "checkpoints, colour = residue index on a cyclic colour map (a circle traced in order "
        "means cyclic-group structure). Title: k and the share of embedding variance on that "
        "plane." + _basis_note(ctx), "fourier.cyclic_structure, n_planes=1",
        runs=f"seed {seed} of every op x weight decay"))
  cols = ("fourier/embed_gini", "fourier/embed_ipr", "fourier/embed_entropy",
          "fourier/fft2_gini", "fourier/cyclic_score")
  panels = ctx.panels(cols)
  if panels:
    paths = measure_figures.trajectories(panels, ctx.tables["metrics"],
                                         ctx.fig_dir / "fig3b_fourier", gen_steps=ctx.res.gen_steps)
    ctx.fig(paths, ctx.cap(
        "Fourier localisation of the embedding against step: Gini coefficient, inverse "
        "participation ratio and entropy of the folded DFT power over frequencies (centred rows, "
        "op's basis), the authors' Gini of |FFT2| of the whole tok_embed, and the cyclic score; "
        "top row test accuracy; dotted lines: each run's t_gen (test accuracy 0.5).",
        "measures.csv (experiments.measure lens 'fourier')"))


def section_bdm(ctx: Ctx) -> None:
  r = ctx.report
  r.heading("4. Algorithmic complexity (paper Fig. 4)")
  panels = ctx.panels(("bdm/2d/total", "bdm/1d/total", "block_gzip/total", "compress/zlib_bits"))
  if not panels:
    r.text("Not measured: measures.csv has no BDM columns.")
  else:
    paths = measure_figures.trajectories(panels, ctx.tables["metrics"], ctx.fig_dir / "fig4_bdm",
                                         gen_steps=ctx.res.gen_steps)
    ctx.fig(paths, ctx.cap(
        "Block Decomposition Method (bits) of every weight matrix quantised to 4 levels at its "
        "quartiles, summed over matrices, against step: 2-D CTM table CTM-B2-D4x4 on the two "
        "Gray-coded bit-planes, 1-D table CTM-B4-D12 on the row-major sequence, the authors' "
        "block-gzip quantity (their Fig. 4 curve; a compression proxy, not BDM) and zlib length.",
        f"BDM at {ctx.setting('bdm_points', 'all')} log-spaced checkpoints"))
  snaps = ctx.snapshots("matrix")
  if snaps:
    name = tables_lib.snapshot_matrix(ctx.run_dir)
    paths = measure_figures.snapshots(snaps, ctx.fig_dir / "fig4_quantised", kind="matrix")
    ctx.fig(paths, ctx.cap(
        f"The 4-level quartile code of `{name}` (what BDM scores, natural token order) at four "
        "checkpoints.", "complexity.quantise, levels=4, method='quantile'",
        runs=f"seed {ctx.cfg['seeds'][0]} of every op x weight decay"))


def section_geometry(ctx: Ctx) -> None:
  r = ctx.report
  r.heading("5. Geometric-complexity proxies and Occam-gate maps (paper Fig. 5 analogue)")
  n_layers = _n_layers(ctx)
  cols = ("spectral_entropy/all", "spectral_entropy/attn", "spectral_entropy/embed", "param_norm",
          "geometry/agop_frob", "geometry/gc",
          f"geometry/participation/blocks.{n_layers - 1}.resid_post",
          "circulant/mean", "occam/diag_fraction", "occam/class/diag_fraction")
  panels = ctx.panels(cols)
  paths = measure_figures.trajectories(panels, ctx.tables["metrics"],
                                       ctx.fig_dir / "fig5_geometry", gen_steps=ctx.res.gen_steps)
  ctx.fig(paths, ctx.cap(
      "Geometric-complexity proxies against step beside test accuracy: singular-value entropy "
      "(all / attention / embedding matrices), total parameter norm, input-gradient AGOP "
      "Frobenius norm, geometric complexity (mean squared Frobenius norm of the answer-logit "
      "Jacobian w.r.t. the input embeddings), participation ratio of the last residual stream, "
      "circulant score, Occam-gate diagonal share.",
      f"geometry lens on {ctx.setting('n_examples')} fixed examples, "
      f"GC method {ctx.setting('gc_method')}"))
  for kind, name, table in (
      ("occam_class", "fig5_occam_class", "the p per-class logit tables L_c[x, y] (each "
       "centred, power pooled over classes)"),
      ("occam", "fig5_occam", "the table of correct-answer logits T[x, y] = logit[x∘y] at "
       "input (x, y) (at initialisation it is dominated by a per-output-token offset, a "
       "function of x∘y alone, so its diagonal share starts near 1)")):
    snaps = ctx.snapshots(kind)
    if not snaps:
      continue
    paths = measure_figures.snapshots(snaps, ctx.fig_dir / name, kind="occam")
    ctx.fig(paths, ctx.cap(
        "Occam-gate maps: log10 of the 2-D DFT power over (x, y) (normalised to its maximum, "
        f"zero frequency centred) of {table}, at four checkpoints; a group-structured table "
        "puts its power on one diagonal family (k_x = k_y for add, k_x = -k_y for sub; in the "
        "discrete-log basis for mul/div)." + _basis_note(ctx),
        "fourier.logit_tables, fourier.occam_gate",
        runs=f"seed {ctx.cfg['seeds'][0]} of every op x weight decay"))


def _n_layers(ctx: Ctx) -> int:
  m = ctx.tables.get("measures")
  cols = [k for k in (m or {}) if k.startswith("geometry/participation/blocks.")]
  return max((int(k.split(".")[1]) for k in cols), default=0) + 1
