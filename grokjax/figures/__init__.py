"""Every figure of the project, drawn from tidy tables and saved arrays.

The only package that imports matplotlib. Figures read the columns `runio.read_csv`
returns (or rows the numpy-only `grokjax.analysis` computes from them) and arrays a
lens saved (snapshots.npz, hidden.npz, a surrogate folder's maps.npz, a calibration's traces);
they never import a lens and never recompute one. One style (`style`) everywhere:
colour = op, line style = seed, step on a log axis with step 0 drawn at 1, and every
figure written as `<stem>.png` and `<stem>.pdf`.

  style      rc params, colours, line styles, DPI, log axes, `save(fig, stem)`
  training   accuracy and loss curves (the paper's Fig. 1; a sweep's curves.png)
  survival   Kaplan-Meier curves of grok time (fraction not yet grokked)
  phase      phase diagrams: heat maps of a grid's cells and its majority phase
  measures   measures against step, snapshots at four steps, the lead ranking
  hidden     PCA / t-SNE maps of the embedding and hidden states, rows = steps
  causal     the patching grid (Fig. 2) and head-ablation curves
  slt        the LLC over training, sampler calibration, rescaling invariance
  surrogate  the surrogate's Fig. 5 analogue, its penalty sweep, the comparison

>>> # from grokjax.figures import training
>>> # training.curves(runio.read_csv("runs/demo/metrics.csv"), "runs/demo/curves")
"""
