"""The reproduction report: report.md, a self-contained report.html and CSV tables.

A report is a list of blocks (headings, paragraphs, figures with captions, tables),
rendered twice: to Markdown that links `figures/*.png` next to it, and to one HTML
file with every figure embedded as base64 PNG (it can be mailed or opened offline).
Every table is also written as `tables/<name>.csv`. Captions say what was measured,
on which runs, with which settings and at which commit (`provenance` reads them from
the run folder's config.json).

>>> r = Report("demo")
>>> r.text("Test accuracy first reaches **0.99** at step `1400`.")
>>> r.table("grok", [{"op": "sub", "step": 1400.0}], caption="grokking steps")
>>> "| sub | 1400 |" in r.markdown()
True
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
import os
import pathlib
import re
import shutil
from typing import Callable, Sequence

import numpy as np

from grokjax import runio
from grokjax.errors import RunFolderError


@dataclasses.dataclass
class Heading:
  text: str
  level: int = 2


@dataclasses.dataclass
class Text:
  text: str  # paragraphs separated by blank lines; '- ' lines are list items


@dataclasses.dataclass
class Figure:
  png: pathlib.Path  # the figure's PNG (a PDF with the same stem sits next to it)
  caption: str


@dataclasses.dataclass
class Table:
  name: str
  rows: list[dict]
  caption: str = ""
  columns: Sequence[str] | None = None  # shown columns (the CSV keeps them all)
  shown: list[dict] | None = None  # shown rows, if not all (the CSV keeps them all)

  @property
  def display(self) -> list[dict]:
    return self.rows if self.shown is None else self.shown


def fmt(v) -> str:
  """A table cell: integers as integers, floats to 4 significant digits, NaN as n/a."""
  if isinstance(v, bool):
    return str(v)
  if isinstance(v, float) or hasattr(v, "dtype") and getattr(v, "dtype").kind == "f":
    v = float(v)
    if not math.isfinite(v):
      return "n/a"
    if v == int(v) and abs(v) < 1e9:
      return str(int(v))
    return f"{v:.4g}"
  return str(v)


def _inline_md_to_html(text: str) -> str:
  out = html.escape(text, quote=False)
  out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
  return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)


class Report:
  """Blocks of a report, rendered to Markdown and to self-contained HTML."""

  def __init__(self, title: str):
    self.title = title
    self.blocks: list = []

  def heading(self, text: str, level: int = 2) -> None:
    self.blocks.append(Heading(text, level))

  def text(self, text: str) -> None:
    self.blocks.append(Text(text))

  def figure(self, png, caption: str) -> None:
    self.blocks.append(Figure(pathlib.Path(png), caption))

  def table(self, name: str, rows: list[dict], caption: str = "",
            columns: Sequence[str] | None = None, shown: list[dict] | None = None) -> None:
    self.blocks.append(Table(name, list(rows), caption, columns, shown))

  # ------------------------------------------------------------ markdown

  def markdown(self, base: pathlib.Path | None = None) -> str:
    """The report as Markdown; figure links are relative to `base` (the report folder)."""
    out = [f"# {self.title}", ""]
    n_fig = 0
    for b in self.blocks:
      if isinstance(b, Heading):
        out += ["#" * b.level + " " + b.text, ""]
      elif isinstance(b, Text):
        out += [b.text.strip(), ""]
      elif isinstance(b, Figure):
        n_fig += 1
        link = os.path.relpath(b.png, base) if base is not None else str(b.png)
        out += [f"![Figure {n_fig}]({link})", "", f"*Figure {n_fig}.* {b.caption}", ""]
      elif isinstance(b, Table):
        out += _md_table(b) + [""]
    return "\n".join(out)

  # ------------------------------------------------------------ html

  def html(self) -> str:
    """The report as one HTML page with every figure embedded (base64 PNG)."""
    body, n_fig = [], 0
    for b in self.blocks:
      if isinstance(b, Heading):
        body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
      elif isinstance(b, Text):
        body.append(_html_text(b.text))
      elif isinstance(b, Figure):
        n_fig += 1
        data = base64.b64encode(b.png.read_bytes()).decode("ascii")
        body.append(f'<figure><img src="data:image/png;base64,{data}" alt="Figure {n_fig}">'
                    f"<figcaption><b>Figure {n_fig}.</b> {_inline_md_to_html(b.caption)}"
                    "</figcaption></figure>")
      elif isinstance(b, Table):
        body.append(_html_table(b))
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(self.title)}"
            f"</title><style>{CSS}</style></head><body><h1>{html.escape(self.title)}</h1>\n"
            + "\n".join(body) + "\n</body></html>\n")

  # ------------------------------------------------------------ files

  def write(self, report_dir) -> dict[str, pathlib.Path]:
    """report.md, report.html and tables/<name>.csv in report_dir; returns their paths."""
    d = pathlib.Path(report_dir)
    (d / "tables").mkdir(parents=True, exist_ok=True)
    paths = {"md": d / "report.md", "html": d / "report.html"}
    for b in self.blocks:
      if isinstance(b, Table) and b.rows:
        paths[b.name] = d / "tables" / f"{b.name}.csv"
        runio.write_csv(paths[b.name], b.rows)
    paths["md"].write_text(self.markdown(base=d))
    paths["html"].write_text(self.html())
    return paths


CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45;"
       "color:#222}figure{margin:1.5em 0}img{max-width:100%}figcaption{font-size:.9em;"
       "color:#444}table{border-collapse:collapse;font-size:.8em;margin:1em 0}"
       "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}th{background:#f2f2f2}"
       "caption{caption-side:top;text-align:left;font-size:.9em;color:#444;padding:4px 0}"
       "code{background:#f4f4f4;padding:0 3px}")


def _columns(t: Table) -> list[str]:
  if t.columns is not None:
    return list(t.columns)
  return list(dict.fromkeys(k for r in t.rows for k in r)) if t.rows else []


def _md_table(t: Table) -> list[str]:
  lines = [f"**Table `{t.name}`.** {t.caption}".strip(), ""]
  if not t.display:
    return lines + ["(no rows)"]
  cols = _columns(t)
  lines.append("| " + " | ".join(cols) + " |")
  lines.append("|" + "|".join("---" for _ in cols) + "|")
  cell = lambda v: fmt(v).replace("|", "\\|")  # a bare | would end the cell
  lines += ["| " + " | ".join(cell(r.get(c, "")) for c in cols) + " |" for r in t.display]
  return lines + ["", f"(CSV: `tables/{t.name}.csv`)"]


def _html_table(t: Table) -> str:
  cap = f"<caption><b>Table {html.escape(t.name)}.</b> {_inline_md_to_html(t.caption)}</caption>"
  if not t.display:
    return f"<table>{cap}<tr><td>(no rows)</td></tr></table>"
  cols = _columns(t)
  head = "<tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
  body = "".join("<tr>" + "".join(f"<td>{html.escape(fmt(r.get(c, '')))}</td>" for c in cols)
                 + "</tr>" for r in t.display)
  return f"<table>{cap}{head}{body}</table>"


def _html_text(text: str) -> str:
  out = []
  for para in re.split(r"\n\s*\n", text.strip()):
    lines = para.splitlines()
    if all(l.lstrip().startswith("- ") for l in lines):
      items = "".join(f"<li>{_inline_md_to_html(l.lstrip()[2:])}</li>" for l in lines)
      out.append(f"<ul>{items}</ul>")
    else:
      out.append(f"<p>{_inline_md_to_html(' '.join(lines))}</p>")
  return "\n".join(out)


# ---------------------------------------------------------------- provenance

def provenance(run_dir) -> dict:
  """commit, created, devices, versions and the sweep config from a run folder's config.json."""
  record = json.loads((pathlib.Path(run_dir) / "config.json").read_text())
  return {"commit": record.get("git_commit", "unknown"), "created": record.get("created", "?"),
          "devices": record.get("devices", []), "versions": record.get("versions", {}),
          "config": record.get("config", {})}


def runs_phrase(cfg: dict) -> str:
  """'x op y mod p for ops ..., weight decays ..., seeds ...' for captions."""
  return (f"ops {', '.join(cfg['ops'])} (mod p = {cfg['p']}), weight decays "
          f"{', '.join(f'{w:g}' for w in cfg['weight_decays'])}, seeds "
          f"{', '.join(str(s) for s in cfg['seeds'])}, model '{cfg['model']}', "
          f"{cfg['steps']} steps, batch {cfg['batch_size']}, "
          f"lr {', '.join(f'{l:g}' for l in cfg['lrs'])}, "
          f"train fraction {', '.join(f'{f:g}' for f in cfg['train_fracs'])}")


def caption(what: str, *, runs: str, settings: str, commit: str) -> str:
  return f"{what} Runs: {runs}. Settings: {settings}. Commit `{commit}`."


# ================================================================ the reproduction report

# (source table, column, label, the paper's claim about it through grokking: +1 rises,
#  -1 falls, 0 no claim). The analysis uses the ones a run folder has.
MEASURES = (
    ("metrics", "test_loss", "test loss (control: moves with test accuracy)", -1),
    ("metrics", "param_norm", "parameter L2 norm", -1),
    ("metrics", "spectral_entropy/all", "singular-value entropy, all matrices", -1),
    ("metrics", "spectral_entropy/attn", "singular-value entropy, attention", -1),
    ("metrics", "spectral_entropy/embed", "singular-value entropy, embeddings", -1),
    ("measures", "fourier/embed_gini", "Fourier Gini of the embedding", 1),
    ("measures", "fourier/embed_ipr", "Fourier IPR of the embedding", 1),
    ("measures", "fourier/embed_entropy", "Fourier entropy of the embedding", -1),
    ("measures", "fourier/unembed_gini", "Fourier Gini of the unembedding", 1),
    ("measures", "fourier/fft2_gini", "authors' |FFT2| Gini of tok_embed", 1),
    ("measures", "fourier/fft2_ipr", "authors' |FFT2| IPR of tok_embed", 1),
    ("measures", "fourier/cyclic_score", "cyclic score (variance on top planes)", 1),
    ("measures", "occam/diag_fraction", "Occam gate (answer table): diagonal share", 1),
    ("measures", "occam/class/diag_fraction", "Occam gate (per-class tables): diagonal share", 1),
    ("measures", "circulant/mean", "circulant score (authors')", 0),
    ("measures", "bdm/2d/total", "BDM, 2-D binary 4x4 (Gray bit-planes)", -1),
    ("measures", "bdm/1d/total", "BDM, 1-D 4-symbol length 12", -1),
    ("measures", "block_gzip/total", "block-gzip (the authors' Fig. 4 quantity)", -1),
    ("measures", "compress/zlib_bits", "zlib length of the 4-level code", -1),
    ("measures", "geometry/gc", "geometric complexity (input Jacobian)", -1),
    ("measures", "geometry/agop_frob", "input-gradient AGOP, Frobenius norm", -1),
    ("measures", "geometry/agop_eff_rank", "input-gradient AGOP, effective rank", -1),
    ("llc", "llc_mean", "local learning coefficient (LLC)", -1),
    ("causal", "causal/top_head_share", "causal: top head's share of |effect|", 1),
)


def read_if(path: pathlib.Path) -> dict | None:
  return runio.read_csv(path) if path.is_file() else None


def _select(table: dict, sel) -> dict:
  return {k: np.asarray(v)[sel] for k, v in table.items()}


def causal_concentration(causal: dict) -> dict:
  """Per run x step: the largest head's share of sum |logit-diff effect| over heads."""
  keys = list(dict.fromkeys(zip(causal["run"].tolist(), causal["step"].tolist())))
  cols: dict[str, list] = {}
  for run, step in keys:
    sel = (causal["run"] == run) & (causal["step"] == step)
    eff = np.abs(causal["logit_diff"][sel])
    i = np.flatnonzero(sel)[0]
    row = {k: causal[k][i] for k in runio.RUN_COLUMNS}
    row.update({"step": step, "causal/top_head_share": eff.max() / eff.sum() if eff.sum() > 0
                else np.nan, "causal/max_abs_effect": eff.max()})
    for k, v in row.items():
      cols.setdefault(k, []).append(v)
  return {k: np.asarray(v, dtype=object if k == "op" else None) for k, v in cols.items()}


def load_tables(run_dir) -> dict[str, dict | None]:
  """The run folder's tidy tables (None where a lens did not run); llc: first sampler only."""
  d = pathlib.Path(run_dir)
  t = {name: read_if(d / f"{name}.csv") for name in
       ("metrics", "measures", "llc", "causal", "causal_ablation", "llc_invariance")}
  t["surrogate"] = read_if(d / "surrogate" / "surrogate.csv")
  if t["llc"] is not None:
    t["llc"] = _select(t["llc"], t["llc"]["sampler"].astype(str) == str(t["llc"]["sampler"][0]))
  t["causal_summary"] = causal_concentration(t["causal"]) if t["causal"] is not None else None
  return t


def available(tables: dict) -> list[tuple[str, str, str, int]]:
  src = {"metrics": "metrics", "measures": "measures", "llc": "llc", "causal": "causal_summary"}
  return [m for m in MEASURES if tables.get(src[m[0]]) is not None and m[1] in tables[src[m[0]]]]


def measure_tables(tables: dict) -> dict[str, dict]:
  src = {"metrics": "metrics", "measures": "measures", "llc": "llc", "causal": "causal_summary"}
  return {col: tables[src[s]] for s, col, _, _ in available(tables)}


# ---------------------------------------------------------------- analysis of a run folder

@dataclasses.dataclass
class Results:
  grok: list[dict]
  transitions: list[dict]
  leads: list[dict]
  correlations: list[dict]
  changes: list[dict]
  gen_steps: dict[int, float]


def analyse(tables: dict) -> Results:
  from grokjax import analysis

  metrics = tables["metrics"]
  grok = analysis.grokking_table(metrics)
  mt = measure_tables(tables)
  transitions = analysis.transition_table(metrics, mt)
  changes = [c for col, t in mt.items() for c in analysis.grokking_change(metrics, t, col)]
  return Results(grok, transitions, analysis.lead_summary(transitions),
                 analysis.correlation_table(transitions), changes,
                 {r["run"]: r["gen_step"] for r in grok})


def _sign_word(x: float) -> str:
  return "rose" if x > 0 else "fell" if x < 0 else "did not change"


def claim_rows(tables: dict, res: Results) -> list[dict]:
  """The paper's claims next to what this run folder measured, with a status each."""
  rows = [_grokking_claim(res.grok)]
  for _, col, label, sign in available(tables):
    if sign == 0 or col == "test_loss":
      continue
    ch = [c for c in res.changes if c["measure"] == col]
    claim = f"{label} {'rises' if sign > 0 else 'falls'} through grokking"
    if not ch:
      rows.append({"claim": claim, "measure": col, "measured": "no run generalised with this "
                   "lens measured", "status": "not measured"})
      continue
    agree = sum(np.sign(c["change"]) == sign for c in ch)
    rel = np.median([c["rel_change"] for c in ch])
    status = "agrees" if agree == len(ch) else "differs" if agree == 0 else "mixed"
    runs = ", ".join(f"{c['op']} wd{c['weight_decay']:g} s{c['seed']}" for c in ch)
    rows.append({"claim": claim, "measure": col, "status": status,
                 "measured": f"{_sign_word(rel)} (median {100 * rel:+.1f}% plateau -> after) in "
                             f"{agree}/{len(ch)} runs as claimed ({runs})"})
  rows.append(_coincidence_claim(res.leads))
  return rows


def _grokking_claim(grok: list[dict]) -> dict:
  claim = "weight decay 1 groks within the budget; weight decay 0 does not, or far later"
  by_wd: dict[float, list] = {}
  for r in grok:
    by_wd.setdefault(r["weight_decay"], []).append(r)
  parts, ok = [], []
  for wd, rs in sorted(by_wd.items()):
    n = sum(np.isfinite(r["test_acc_099_step"]) for r in rs)
    steps = [int(r["test_acc_099_step"]) for r in rs if np.isfinite(r["test_acc_099_step"])]
    parts.append(f"wd {wd:g}: {n}/{len(rs)} runs reach test acc 0.99"
                 + (f" (steps {min(steps)}-{max(steps)})" if steps else ""))
    ok.append((wd, n, len(rs)))
  hi = [x for x in ok if x[0] > 0]
  lo = [x for x in ok if x[0] == 0]
  if not hi or not lo:
    status = "not measured"
  elif all(n == m for _, n, m in hi) and all(n == 0 for _, n, _ in lo):
    status = "agrees"
  elif all(n == 0 for _, n, _ in hi):
    status = "differs"
  else:
    status = "mixed"
  return {"claim": claim, "measure": "test_acc", "measured": "; ".join(parts), "status": status}


def _coincidence_claim(leads: list[dict]) -> dict:
  primary = [r for r in leads if r["method"] == "half" and r["verdict"] != "n/a"
             and r["measure"] != "test_loss"]
  kinds = ("before", "with", "after", "mixed")
  counts = {v: sum(r["verdict"] == v for r in primary) for v in kinds}
  n = sum(counts.values())
  status = ("not measured" if n == 0 else "agrees" if counts["with"] >= n / 2 else "differs")
  return {"claim": "the jump coincides with the collapse of complexity (no lead either way)",
          "measure": "lead verdicts (half-change)", "status": status,
          "measured": f"{n} measure x group verdicts: " + ", ".join(f"{v} {k}" for k, v in
                                                                    counts.items())}


def lead_sentences(leads: list[dict], labels: dict[str, str]) -> str:
  """Plain statement of which measures move before, with, or after test accuracy."""
  primary = [r for r in leads if r["method"] == "half" and r["verdict"] != "n/a"]
  per: dict[str, list[dict]] = {}
  for r in primary:
    per.setdefault(r["measure"], []).append(r)
  groups: dict[str, list[str]] = {"before": [], "with": [], "after": [], "mixed": []}
  for m, rs in per.items():
    vs = {r["verdict"] for r in rs}
    v = vs.pop() if len(vs) == 1 else "mixed"
    lead = np.nanmean([r["lead_decades_mean"] for r in rs])
    where = ", ".join(f"{r['op']} wd{r['weight_decay']:g}: {r['verdict']} "
                      f"({r['lead_decades_mean']:+.2f} dec, n={r['n_timed']})" for r in rs)
    groups[v].append(f"`{m}` ({labels.get(m, m)}; mean lead {lead:+.2f} decades; {where})")
  if not per:
    return ("No lead time could be measured: no group of runs both generalised (test "
            "accuracy reached 0.5) and had at least two seeds with a timed measure.")
  words = {"before": "**Moved before test accuracy** (in every group, already past half its "
                     "post-memorisation change at a checkpoint where test accuracy was still "
                     "below 0.5)",
           "with": "**Moved with test accuracy** (the checkpoints cannot order the two)",
           "after": "**Moved after test accuracy**",
           "mixed": "**Mixed** (the order differs between seeds or ops)"}
  lines = [f"- {words[k]}: " + ("; ".join(v) if v else "none") for k, v in groups.items()]
  return "\n".join(lines)


# ---------------------------------------------------------------- sections

@dataclasses.dataclass
class Ctx:
  run_dir: pathlib.Path
  fig_dir: pathlib.Path
  tables: dict
  res: Results
  prov: dict
  report: Report
  write: Callable[[str], None]
  plan: dict

  @property
  def cfg(self) -> dict:
    return self.prov["config"]

  def cap(self, what: str, settings: str, runs: str | None = None) -> str:
    return caption(what, runs=runs or runs_phrase(self.cfg), settings=settings,
                   commit=self.prov["commit"])

  def fig(self, paths, caption_text: str) -> None:
    png = [p for p in paths if str(p).endswith(".png")][0]
    self.report.figure(png, caption_text)


def _labels() -> dict[str, str]:
  return {col: label for _, col, label, _ in MEASURES}


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


def _panels(ctx: Ctx, columns: Sequence[str]) -> list[tuple[dict, str, str]]:
  mt = measure_tables(ctx.tables)
  labels = _labels()
  return [(mt[c], c, labels.get(c, c)) for c in columns if c in mt]


def section_grokking(ctx: Ctx) -> None:
  from grokjax import figures

  r = ctx.report
  r.heading("1. Grokking curves (paper Fig. 1)")
  paths = figures.curves(ctx.tables["metrics"], ctx.res.grok, ctx.fig_dir / "fig1_curves")
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


def section_causal(ctx: Ctx) -> None:
  causal, ablation = ctx.tables["causal"], ctx.tables["causal_ablation"]
  r = ctx.report
  r.heading("2. Causal mediation and head ablation (paper Fig. 2)")
  if causal is None:
    r.text("Not measured: the causal stage did not run (causal.csv is absent).")
    return
  from grokjax.causal import plots as cplots

  steps = sorted(set(causal["step"].tolist()))
  for op in dict.fromkeys(causal["op"].astype(str).tolist()):
    stem = ctx.fig_dir / f"fig2_causal_{op}"
    for ext in (".png", ".pdf"):
      cplots.plot_patching_grid(causal, op, stem.with_suffix(ext), metric="logit_diff")
    ctx.fig([stem.with_suffix(".png")], ctx.cap(
        f"Activation patching, {op}: change in logit[corrupt answer] - logit[clean answer] when "
        "one head's output at the answer position is replaced by its output on the corrupted "
        "prompt (same x, different y), mean over prompt pairs and over seeds; rows weight decay, "
        f"columns checkpoints {steps}.",
        f"{ctx.plan.get('causal_pairs', '?')} prompt pairs per run, "
        "sampled from all (x, y) of the task"))
  if ablation is not None:
    for op in dict.fromkeys(ablation["op"].astype(str).tolist()):
      stem = ctx.fig_dir / f"fig2_ablation_{op}"
      for ext in (".png", ".pdf"):
        cplots.plot_ablation_curves(ablation, op, stem.with_suffix(ext))
      ctx.fig([stem.with_suffix(".png")], ctx.cap(
          f"Cumulative head ablation, {op}: accuracy on test examples as heads are zero-ablated "
          "in order of patching importance (solid) or in random orders (mean and band).",
          f"ablation mode {ablation['ablation'][0]}, "
          f"{int(ablation['order_index'].max()) + 1} random orders"))
  summary = ctx.tables["causal_summary"]
  rows = [{k: _py(summary[k][i]) for k in ("op", "weight_decay", "seed", "step",
                                              "causal/top_head_share", "causal/max_abs_effect")}
          for i in range(len(summary["run"]))]
  r.table("causal_concentration", rows, caption=(
      "Per run and checkpoint: the largest head's share of the summed |logit-diff effect| over "
      "heads (1/heads when every head matters equally, 1 when one head carries everything)."))


def _py(x):
  return x.item() if isinstance(x, np.generic) else x


def snapshot_list(ctx: Ctx, kind: str) -> list[dict]:
  """[{op, weight_decay, seed, step, array, note}] from run_dir/snapshots.npz ('' if absent)."""
  from grokjax import analysis

  path = ctx.run_dir / "snapshots.npz"
  if not path.is_file():
    return []
  out = []
  with np.load(path) as z:
    for run in z["runs"].tolist():
      info = analysis.run_info(ctx.tables["metrics"], run)
      for step in z["steps"].tolist():
        key = f"{kind}|{run}|{step}"
        if key not in z:
          continue
        note = ""
        if kind == "embedding":
          note = f"k={int(z[f'freq|{run}|{step}'])}, cyclic {float(z[f'cyclic|{run}|{step}']):.2f}"
        elif kind == "occam":
          note = f"diagonal share {float(z[f'diag|{run}|{step}']):.2f}"
        elif kind == "occam_class":
          note = f"diagonal share {float(z[f'class_diag|{run}|{step}']):.2f}"
        out.append({**info, "step": step, "array": z[key], "note": note})
  return out


def _basis_note(ctx: Ctx) -> str:
  ops = ctx.cfg["ops"]
  dl = [o for o in ops if o in ("mul", "div")]
  return (" Rows are residues in natural order for add/sub" +
          (f" and by discrete logarithm (a generator of Z_p^*) for {', '.join(dl)}" if dl else "")
          + ".")


def section_fourier(ctx: Ctx) -> None:
  from grokjax import figures

  r = ctx.report
  r.heading("3. Group structure and Fourier localisation (paper Fig. 3)")
  seed = ctx.cfg["seeds"][0]
  for kind, name, what in (("embedding", "fig3a_embedding_fourier", "on the plane (cos, sin "
                            "coefficients) of their strongest Fourier frequency k"),
                           ("pca", "fig3a_embedding_pca", "on their top two principal components")):
    snaps = snapshot_list(ctx, kind)
    if not snaps:
      r.text(f"Not measured: snapshots.npz is absent ({kind} figure).")
      continue
    paths = figures.snapshots(snaps, ctx.fig_dir / name, kind="embedding")
    ctx.fig(paths, ctx.cap(
        f"Number embeddings (rows of tok_embed for the p residues, centred) {what}, at four "
        "checkpoints, colour = residue index on a cyclic colour map (a circle traced in order "
        "means cyclic-group structure). Title: k and the share of embedding variance on that "
        "plane." + _basis_note(ctx), "fourier.cyclic_structure, n_planes=1",
        runs=f"seed {seed} of every op x weight decay"))
  cols = ("fourier/embed_gini", "fourier/embed_ipr", "fourier/embed_entropy",
          "fourier/fft2_gini", "fourier/cyclic_score")
  panels = _panels(ctx, cols)
  if panels:
    paths = figures.trajectories(panels, ctx.tables["metrics"], ctx.fig_dir / "fig3b_fourier",
                                 gen_steps=ctx.res.gen_steps)
    ctx.fig(paths, ctx.cap(
        "Fourier localisation of the embedding against step: Gini coefficient, inverse "
        "participation ratio and entropy of the folded DFT power over frequencies (centred rows, "
        "op's basis), the authors' Gini of |FFT2| of the whole tok_embed, and the cyclic score; "
        "top row test accuracy; dotted lines: each run's t_gen (test accuracy 0.5).",
        "measures.csv (experiments.measure lens 'fourier')"))


def section_bdm(ctx: Ctx) -> None:
  from grokjax import figures

  r = ctx.report
  r.heading("4. Algorithmic complexity (paper Fig. 4)")
  panels = _panels(ctx, ("bdm/2d/total", "bdm/1d/total", "block_gzip/total", "compress/zlib_bits"))
  if not panels:
    r.text("Not measured: measures.csv has no BDM columns.")
  else:
    paths = figures.trajectories(panels, ctx.tables["metrics"], ctx.fig_dir / "fig4_bdm",
                                 gen_steps=ctx.res.gen_steps)
    ctx.fig(paths, ctx.cap(
        "Block Decomposition Method (bits) of every weight matrix quantised to 4 levels at its "
        "quartiles, summed over matrices, against step: 2-D CTM table CTM-B2-D4x4 on the two "
        "Gray-coded bit-planes, 1-D table CTM-B4-D12 on the row-major sequence, the authors' "
        "block-gzip quantity (their Fig. 4 curve; a compression proxy, not BDM) and zlib length.",
        f"BDM at {ctx.plan.get('bdm_points', 'all')} log-spaced checkpoints"))
  snaps = snapshot_list(ctx, "matrix")
  if snaps:
    name = str(np.load(ctx.run_dir / "snapshots.npz")["matrix_name"])
    paths = figures.snapshots(snaps, ctx.fig_dir / "fig4_quantised", kind="matrix")
    ctx.fig(paths, ctx.cap(
        f"The 4-level quartile code of `{name}` (what BDM scores, natural token order) at four "
        "checkpoints.", "complexity.quantise, levels=4, method='quantile'",
        runs=f"seed {ctx.cfg['seeds'][0]} of every op x weight decay"))


def section_geometry(ctx: Ctx) -> None:
  from grokjax import figures

  r = ctx.report
  r.heading("5. Geometric-complexity proxies and Occam-gate maps (paper Fig. 5 analogue)")
  n_layers = _n_layers(ctx)
  cols = ("spectral_entropy/all", "spectral_entropy/attn", "spectral_entropy/embed", "param_norm",
          "geometry/agop_frob", "geometry/gc",
          f"geometry/participation/blocks.{n_layers - 1}.resid_post",
          "circulant/mean", "occam/diag_fraction", "occam/class/diag_fraction")
  panels = _panels(ctx, cols)
  paths = figures.trajectories(panels, ctx.tables["metrics"], ctx.fig_dir / "fig5_geometry",
                               gen_steps=ctx.res.gen_steps)
  ctx.fig(paths, ctx.cap(
      "Geometric-complexity proxies against step beside test accuracy: singular-value entropy "
      "(all / attention / embedding matrices), total parameter norm, input-gradient AGOP "
      "Frobenius norm, geometric complexity (mean squared Frobenius norm of the answer-logit "
      "Jacobian w.r.t. the input embeddings), participation ratio of the last residual stream, "
      "circulant score, Occam-gate diagonal share.",
      f"geometry lens on {ctx.plan.get('n_examples', '?')} fixed examples, "
      f"GC method {ctx.plan.get('gc_method', '?')}"))
  for kind, name, table in (
      ("occam_class", "fig5_occam_class", "the p per-class logit tables L_c[x, y] (each "
       "centred, power pooled over classes)"),
      ("occam", "fig5_occam", "the table of correct-answer logits T[x, y] (the issue's "
       "definition; at initialisation it is dominated by a per-output-token offset, a "
       "function of x∘y alone, so its diagonal share starts near 1)")):
    snaps = snapshot_list(ctx, kind)
    if not snaps:
      continue
    paths = figures.snapshots(snaps, ctx.fig_dir / name, kind="occam")
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


def section_llc(ctx: Ctx) -> None:
  from grokjax import figures

  r = ctx.report
  r.heading("6. Local learning coefficient (SLT)")
  llc = ctx.tables["llc"]
  if llc is None:
    r.text("Not measured: the llc stage did not run (llc.csv is absent).")
  else:
    paths = figures.trajectories(_panels(ctx, ("llc_mean",)), ctx.tables["metrics"],
                                 ctx.fig_dir / "fig6_llc", gen_steps=ctx.res.gen_steps)
    g = lambda k: llc[k][0]
    ctx.fig(paths, ctx.cap(
        "LLC estimate λ̂ = nβ (E[L_m(w)] - L_n(w*)) at checkpoints against step, beside test "
        "accuracy, on each run's training split.",
        f"sampler {g('sampler')}, step size {g('step_size'):g}, "
        f"localisation {g('localization'):g}, "
        f"nβ {g('nbeta'):.4g}, {g('num_chains')} chains x {g('num_draws')} draws "
        f"({g('num_burnin')} burn-in), batch {g('batch_size')}; "
        f"{int(np.sum(llc['diverged']))} diverged chains in total; "
        f"{_saturation_note(llc)}"))
  inv = ctx.tables["llc_invariance"]
  if inv is None:
    r.text("Not measured: sampler invariance (llc_invariance.csv is absent).")
    return
  from grokjax.slt import invariance

  rows = []
  for sampler in dict.fromkeys(inv["sampler"].astype(str).tolist()):
    sel = inv["sampler"].astype(str) == sampler
    init = inv["init_loss"][sel]
    out = {"alpha": inv["alpha"][sel], "beta": inv["beta"][sel], "llc/mean": inv["llc_mean"][sel],
           "loss/init": init,  # the arrays rescaling_grid returned, rebuilt from the CSV
           "loss/init_original": np.asarray(init[0] - inv["init_loss_change"][sel][0])}
    stem = ctx.fig_dir / f"fig6_invariance_{sampler}"
    for ext in (".png", ".pdf"):
      invariance.plot_invariance(out, stem.with_suffix(ext), title=f"sampler {sampler}")
    z = inv["llc_mean"][sel]
    same = np.abs(inv["init_loss_change"][sel]) < SAME_FUNCTION
    rows.append({"sampler": sampler, **_spread(z, "all"), **_spread(z[same], "same_fn"),
                 "diverged": int(inv["diverged"][sel].sum())})
    i0 = np.flatnonzero(sel)[0]
    ctx.fig([stem.with_suffix(".png")], ctx.cap(
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
  sfm = ctx.tables["surrogate"]
  if sfm is None:
    r.text("Not measured: the surrogate stage did not run (surrogate/surrogate.csv is absent).")
    return
  from grokjax.surrogate import plots as splots

  scfg = json.loads((folder / "config.json").read_text())["config"]
  runs = (f"the SFM grid in surrogate/: ops {', '.join(scfg['ops'])}, p = {scfg['p']}, penalties "
          f"{', '.join(f'{x:g}' for x in scfg['penalties'])}, seeds "
          f"{', '.join(str(x) for x in scfg['seeds'])}, {scfg['steps']} steps")
  sets = f"lr {scfg['lr']:g}, train fraction {scfg['train_frac']:g} (surrogate/config.json)"
  figs = [(splots.figure5(folder), "The paper's Fig. 5 in our terms (a documented reconstruction "
           "of the SFM): left, test accuracy (green) against the complexity proxies (red: the "
           "learning coefficient of the active set λ_A and the spectral entropy of the learned "
           "table) on a log step axis; right, log spectral power of the learned table in the "
           "group's Fourier basis at init, memorisation, switch and the end."),
          (splots.penalty_sweep(folder), "Test accuracy and λ_A against step for each Occam-gate "
           "penalty η, and the delay and final λ_A against η.")]
  comp = splots.comparison(folder, ctx.run_dir)
  if comp is not None:
    figs.append((comp, "The surrogate's normalised proxies (left) next to the transformer "
                       "proxies of this run folder (right), both beside test accuracy."))
  for png, what in figs:
    png = pathlib.Path(png)
    for ext in (".png", ".pdf"):  # a copy, so that the report folder stands alone
      if png.with_suffix(ext).is_file():
        dest = (ctx.fig_dir / f"fig7_sfm_{png.stem}").with_suffix(ext)
        shutil.copyfile(png.with_suffix(ext), dest)
    r.figure(ctx.fig_dir / f"fig7_sfm_{png.stem}.png", ctx.cap(what, sets, runs=runs))
  summary = read_if(folder / "summary.csv")
  if summary is not None:
    rows = [{k: _py(summary[k][i]) for k in summary} for i in range(len(summary["op"]))]
    r.table("surrogate_summary", rows, caption=(
        "Per SFM run (grokjax.surrogate.results.summarize): memorisation and generalisation "
        "steps, the complexity proxy λ_A at start, memorisation and end, and reference values "
        "(p²/2, n/2, (p-1)/2, p/2)."))


def section_leads(ctx: Ctx) -> None:
  from grokjax import figures

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
  labels = _labels()
  r.text(lead_sentences(ctx.res.leads, labels))
  for method, name in (("half", "fig8_lead_ranking"), ("sigmoid", "fig8_lead_ranking_sigmoid"),
                       ("half_all", "fig8_lead_ranking_whole_run")):
    paths = figures.lead_ranking(ctx.res.leads, ctx.fig_dir / name, method=method)
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
               "and after grokking (test accuracy >= 0.99), medians over checkpoints."))


def section_header(ctx: Ctx) -> None:
  r, p = ctx.report, ctx.prov
  v = p["versions"]
  r.text(
      f"Run folder `{ctx.run_dir}`, trained {p['created']} on {', '.join(p['devices'][:2])}"
      f"{' ...' if len(p['devices']) > 2 else ''} at commit `{p['commit']}` (jax {v.get('jax')}, "
      f"flax {v.get('flax')}, optax {v.get('optax')}, pybdm {v.get('pybdm')}). Sweep: "
      f"{runs_phrase(ctx.cfg)}. Every number below was computed from this folder's tables by "
      "`grokjax.report.build_report`; nothing is tuned to match the paper.")
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
  if ctx.plan:
    r.table("plan", [{"setting": k, "value": str(v)} for k, v in ctx.plan.items()],
            caption="The lens plan of this preset (experiments.reproduce.PLANS).")


SECTIONS = (section_header, section_grokking, section_causal, section_fourier, section_bdm,
            section_geometry, section_llc, section_surrogate, section_leads, section_correlations)


def build_report(run_dir, *, plan: dict | None = None, title: str | None = None,
                 write: Callable[[str], None] = print) -> dict[str, pathlib.Path]:
  """Analysis, figures and report of a run folder into run_dir/report/; returns the paths.

  The lens plan is `plan`, else the one the pipeline recorded in run_dir/plan.json.
  """
  from grokjax import plan as plan_lib

  run_dir = pathlib.Path(run_dir)
  if plan is None:
    recorded = plan_lib.load(run_dir)
    plan = None if recorded is None else plan_lib.to_dict(recorded)
  tables = load_tables(run_dir)
  if tables["metrics"] is None:
    raise RunFolderError(f"{run_dir} has no metrics.csv: train the sweep first")
  out = run_dir / "report"
  res = analyse(tables)
  ctx = Ctx(run_dir, out / "figures", tables, res, provenance(run_dir),
            Report(title or f"grokjax reproduction: {run_dir.name}"), write, plan or {})
  for section in SECTIONS:
    section(ctx)
    write(f"report: {section.__name__[8:]} done")
  return ctx.report.write(out)
