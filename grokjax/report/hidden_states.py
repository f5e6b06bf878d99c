"""Report section of the hidden-state lens: PCA and t-SNE maps over training (paper appendix).

Reads run_dir/hidden.npz (written by the pipeline's hidden stage; its key names are the
contract, see grokjax.measures.hidden_apply) and metrics.csv, draws the maps with
`grokjax.figures.hidden` (one figure per op, method and colouring: rows the steps,
columns the number embedding and each block per weight decay), tabulates the top-two
PCA variance shares and reads them in two sentences.
"""

from __future__ import annotations

import pathlib

import numpy as np

from grokjax import analysis, runio
from grokjax.figures import hidden as hidden_figures
from grokjax.report.context import Ctx

FILE = "hidden.npz"
EMBEDDING = "tok_embed"
METHODS = {"pca": "PCA (top two principal axes of the centred points)", "tsne": "t-SNE"}
COLOURS = {"answer": "the answer (x∘y mod p; for the embedding rows: the number itself)",
           "x": "x, the first operand (for the embedding rows: the number itself)"}


def load(run_dir) -> dict[str, np.ndarray] | None:
  path = pathlib.Path(run_dir) / FILE
  if not path.is_file():
    return None
  return runio.read_npz(path, ())


def site_name(site: str) -> str:
  return "embedding" if site == EMBEDDING else site.replace("blocks.", "block ")


def reported_runs(h: dict, metrics: dict) -> list[int]:
  """The file's runs that metrics.csv still lists (the report leaves diverged runs out)."""
  return [r for r in h["runs"].tolist() if np.any(np.asarray(metrics["run"]) == r)]


def explained_rows(h: dict, metrics: dict) -> list[dict]:
  """Per run x step x site: the variance shares of the top two PCA axes."""
  rows = []
  for run in reported_runs(h, metrics):
    info = analysis.run_info(metrics, run)
    for step in h["steps"].tolist():
      for site in h["sites"].tolist():
        ev = h[f"explained|{site}|{run}|{step}"]
        rows.append({**{k: info[k] for k in ("op", "weight_decay", "seed")}, "run": run,
                     "step": step, "site": site, "pc1": float(ev[0]), "pc2": float(ev[1]),
                     "pc1+2": float(ev[:2].sum())})
  return rows


def _test_acc(metrics: dict, run: int, step: int) -> float:
  steps, acc = analysis.trajectory(metrics, run, "test_acc")
  at = steps <= step
  return float(acc[at][-1]) if at.any() else float("nan")


def panels(h: dict, metrics: dict, op: str, method: str, colour: str) -> list[dict]:
  """The figure's panels for one op: rows steps, columns (weight decay, site)."""
  out = []
  runs = [r for r in reported_runs(h, metrics) if analysis.run_info(metrics, r)["op"] == op]
  p = len(h[f"pca|{EMBEDDING}|{runs[0]}|{h['steps'][0]}"])
  for run in sorted(runs, key=lambda r: analysis.run_info(metrics, r)["weight_decay"]):
    wd = analysis.run_info(metrics, run)["weight_decay"]
    for step in h["steps"].tolist():
      for site in h["sites"].tolist():
        coords = h.get(f"{method}|{site}|{run}|{step}")
        if coords is None:
          continue
        if site == EMBEDDING:
          labels = np.arange(p)
        else:
          labels = h[f"{colour}|{op}"]
          if method == "tsne":
            labels = labels[h[f"tsne_index|{op}"]]
        note = f"test acc {_test_acc(metrics, run, step):.2f}"
        if method == "pca":
          note += f", PC1+2 {h[f'explained|{site}|{run}|{step}'][:2].sum():.0%}"
        out.append({"row": step, "column": f"wd {wd:g}: {site_name(site)}", "coords": coords,
                    "labels": labels, "note": note})
  return out


def reading(rows: list[dict], steps: list[int], last_site: str) -> str:
  """Two sentences: the top-two PCA share of the embedding, and of the last block, first vs
  last step, at each weight decay (the first op)."""
  op = rows[0]["op"]
  def share(wd, site, step):
    return next(r["pc1+2"] for r in rows if (r["op"], r["weight_decay"], r["site"], r["step"])
                == (op, wd, site, step))

  wds = sorted({r["weight_decay"] for r in rows if r["op"] == op}, reverse=True)
  first, last = steps[0], steps[-1]
  def phrase(site):
    return "; ".join(f"{share(wd, site, first):.0%} at step {first} and {share(wd, site, last):.0%} "
                     f"at step {last} for weight decay {wd:g}" for wd in wds)
  return (f"On {op}, the top two principal axes of the number embedding carry {phrase(EMBEDDING)} "
          f"(a larger share: the rows lie closer to one plane, such as the circle of a "
          f"dominant Fourier frequency). Those of the answer-position residual stream after "
          f"{site_name(last_site)} carry {phrase(last_site)}.")


def section_hidden(ctx: Ctx) -> None:
  r = ctx.report
  r.heading("Embeddings and hidden states over training (paper appendix: PCA and t-SNE)")
  h = load(ctx.run_dir)
  if h is None:
    r.text("Not measured: the hidden stage did not run (hidden.npz is absent).")
    return
  metrics, steps = ctx.tables["metrics"], h["steps"].tolist()
  rows = explained_rows(h, metrics)
  if not rows:
    r.text("No map to draw: every mapped run is left out of the report.")
    return
  sites = h["sites"].tolist()
  r.text(reading(rows, steps, sites[-1]))
  method_note = str(h["tsne_method"])
  n = int(h["n_examples"])
  examples = "all p(p-1) examples" if n < 0 else f"{n} seeded examples"
  has_tsne = any(k.startswith("tsne|") for k in h)
  if not has_tsne:
    r.text(f"t-SNE maps: none drawn, {method_note}.")
  ops = list(dict.fromkeys(analysis.run_info(metrics, run)["op"]
                           for run in reported_runs(h, metrics)))
  for op in ops:
    for method in ("pca", "tsne") if has_tsne else ("pca",):
      for colour in COLOURS:
        grid = panels(h, metrics, op, method, colour)
        paths = hidden_figures.maps(grid, ctx.fig_dir / f"hidden_{method}_{colour}_{op}",
                                    label=colour, period=ctx.cfg["p"])
        blocks = [site_name(s) for s in sites if s != EMBEDDING
                  and any(f"{method}|{s}|" in k for k in h)]
        ctx.fig(paths, ctx.cap(
            f"{METHODS[method]} of the number embedding (the p rows of tok_embed) and of the "
            f"residual stream at the answer position after {' and '.join(blocks)} ({op}), at "
            f"checkpoints "
            f"{steps} (rows); colour = {COLOURS[colour]} on a cyclic colour map.",
            _settings(h, method, examples, method_note),
            runs=f"seed {ctx.cfg['seeds'][0]} of every weight decay"))
  r.table("hidden_explained", rows, caption=(
      "Variance shares of the top two principal axes of each point cloud (site tok_embed: "
      "the number embedding rows; blocks.l: the answer-position residual stream after block l) "
      f"on {examples}."), columns=("op", "weight_decay", "step", "site", "pc1", "pc2", "pc1+2"))


def _settings(h: dict, method: str, examples: str, method_note: str) -> str:
  if method == "pca":
    return f"hidden stage, PCA on {examples}"
  perp = {s: float(h[f"tsne_perplexity|{s}"]) for s in h["sites"].tolist()
          if f"tsne_perplexity|{s}" in h}
  perps = ", ".join(f"{site_name(s)} {v:.3g}" for s, v in perp.items())
  m = len(next(v for k, v in h.items() if k.startswith("tsne_index|")))
  return (f"hidden stage, {method_note}, on {m} seeded examples of the PCA's "
          f"(the embedding: all p rows), perplexity {perps}")
