"""Figures of a surrogate run folder (they read its files; nothing is recomputed).

A surrogate folder holds config.json (the grid: ops, p, penalties, seeds, lr, and the
run table), surrogate.csv, summary.csv and maps.npz (the spectral maps at four
moments, `moments` their names, `own_basis` the basis each run's group is diagonal
in: 'natural' for add/sub, 'dlog' for mul/div).

* `figure5`: the paper's Figure 5 in our terms, one row per op: left, test accuracy
  (green) against the complexity proxies (red: λ_A = learning coefficient of the
  active set, and the free energy divided by log n) on a log step axis, with the
  reference values p²/2, n/2 and p/2; right, the spectral weight maps of the learned
  table at the four moments in the run's own basis, and the final map in the other.
* `penalty_sweep`: test accuracy and λ_A for every penalty strength η, and the
  generalisation step against η next to the predicted cleanup time 1/(λ·lr).
* `comparison`: the same proxies, each rescaled to [0, 1], for the SFM and for a
  transformer run folder (metrics.csv, and llc.csv / measures.csv when they exist) on
  the same axes.

>>> # figure5("runs/surrogate", "runs/surrogate/figure5")   # -> [figure5.png, figure5.pdf]
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib

import matplotlib.ticker
import numpy as np

from grokjax import runio
from grokjax.errors import RunFolderError
from grokjax.figures import style
from grokjax.figures.style import GREEN, GREY, RED, plt


@dataclasses.dataclass
class Folder:
  """What the figures read from a surrogate run folder."""

  path: pathlib.Path
  config: dict  # config.json's "config": ops, p, penalties, seeds, lr, ...
  runs: list[tuple[str, float, int]]  # (op, penalty, seed) per run index
  table: dict
  summary: dict
  maps: dict

  def run_index(self, op: str, penalty: float, seed: int) -> int:
    return self.runs.index((op, penalty, seed))


def load(folder) -> Folder:
  """The folder's config, tables and maps; RunFolderError where one is missing."""
  folder = pathlib.Path(folder)
  path = folder / "config.json"
  if not path.is_file():
    raise RunFolderError(f"{folder} is not a surrogate run folder: {path} does not exist")
  record = json.loads(path.read_text())
  maps = dict(np.load(folder / "maps.npz"))
  missing = [k for k in ("own_basis", "moments") if k not in maps]
  if missing:
    raise RunFolderError(f"{folder / 'maps.npz'} lacks {missing}: it was written by an older "
                         "surrogate stage; train the surrogate again")
  runs = [(r["op"], float(r["penalty"]), int(r["seed"])) for r in record["runs"]]
  return Folder(folder, record["config"], runs, runio.read_csv(folder / "surrogate.csv"),
                runio.read_csv(folder / "summary.csv"), maps)


def _series(table, run: int, column: str):
  sel = table["run"] == run
  order = np.argsort(table["step"][sel])
  return table["step"][sel][order], table[column][sel][order].astype(float)


def pick_penalty(penalties, penalty: float | None) -> float:
  """The requested penalty, or the median positive one of the grid (0 if none)."""
  if penalty is not None:
    return min(penalties, key=lambda e: abs(e - penalty))
  positive = sorted(e for e in penalties if e > 0)
  return positive[len(positive) // 2] if positive else penalties[0]


def _references(ax, p: int, n: float, x0: float, scale: float = 1.08) -> None:
  for value, name in ((p ** 2 / 2, "p²/2"), (n / 2, "n/2"), (p / 2, "p/2")):
    ax.axhline(value, color=GREY, lw=0.8, ls=":")
    ax.text(x0, value * scale, f"{name}={value:g}", color=GREY, fontsize=6, va="bottom")


def _curves(ax, f: Folder, run: int, n: int, moment_steps, label_right: bool) -> None:
  steps, te = _series(f.table, run, "test_acc")
  _, tr = _series(f.table, run, "train_acc")
  x = steps + 1
  ax.plot(x, te, color=GREEN, lw=2, label="test acc")
  ax.plot(x, tr, color=GREEN, lw=1, ls="--", alpha=0.6, label="train acc")
  style.step_axis(ax, "step + 1")
  ax.set_ylim(-0.02, 1.08)
  ax.set_ylabel("accuracy", color=GREEN)
  red = ax.twinx()
  for column, ls, label in (("complexity/llc", "-", "λ_A = |A|/2"),
                            ("complexity/gate_mass", ":", "Σg/2 (relaxed)")):
    red.plot(x, _series(f.table, run, column)[1], color=RED, lw=2 if ls == "-" else 1.5, ls=ls,
             label=label)
  _, fe = _series(f.table, run, "free_energy")
  red.plot(x, fe / math.log(n), color=RED, lw=1, ls="--", label="free energy / log n")
  red.set_yscale("log")
  red.spines["right"].set_visible(True)
  if label_right:
    red.set_ylabel("learning-coefficient units", color=RED)
  _references(red, f.config["p"], n, x[0])
  for label, s in zip("abcd", moment_steps):
    ax.axvline(s + 1, color=GREY, lw=0.6)
    ax.text(s + 1, 1.02, label, fontsize=8, ha="center", va="bottom", color=GREY)
  lines = ax.get_lines()[:2] + red.get_lines()[:3]
  ax.legend(lines, [l.get_label() for l in lines], fontsize=6, loc="center left")


def _map(ax, power, title: str) -> None:
  img = np.log10(np.fft.fftshift(power) + 1e-12)
  ax.imshow(img, cmap="magma", vmin=img.max() - 6, vmax=img.max(), interpolation="nearest")
  ax.set_title(title, fontsize=7)
  style.blank(ax)


def figure5(folder, stem=None, *, penalty: float | None = None, seed: int | None = None):
  """The Figure-5 analogue (module docstring) as stem.png/.pdf (default folder/figure5)."""
  f = load(folder)
  ops, eta = f.config["ops"], pick_penalty(f.config["penalties"], penalty)
  seed = f.config["seeds"][0] if seed is None else seed
  with plt.rc_context(style.RC):
    height = 3.3 * len(ops) + 0.6
    fig = plt.figure(figsize=(16, height))
    grid = fig.add_gridspec(len(ops), 7, width_ratios=[3.2, 0.45, 1, 1, 1, 1, 1], hspace=0.55,
                            wspace=0.15, left=0.04, right=0.99, bottom=0.5 / height,
                            top=1 - 0.75 / height)  # margins in inches: axis labels, titles
    for row, op in enumerate(ops):
      r = f.run_index(op, eta, seed)
      own = str(f.maps["own_basis"][r])
      other = "natural" if own == "dlog" else "dlog"
      idx = f.maps["moment_index"][r]
      n = int(f.summary["n_train"][r])
      ax = fig.add_subplot(grid[row, 0])
      _curves(ax, f, r, n, f.maps["steps"][idx], row == 0)
      ax.set_title(f"{op}  (p={f.config['p']}, η={eta:g}, seed={seed})", fontsize=9)
      _, ent = _series(f.table, r, "spectral/entropy")
      for j, (label, moment) in enumerate(zip("abcd", f.maps["moments"].tolist())):
        step = int(f.maps["steps"][idx[j]])
        _map(fig.add_subplot(grid[row, 2 + j]), f.maps[own][r, j],
             f"{label}) {moment}, step {step}\n{own} basis, H={ent[idx[j]]:.2f}")
      if other in f.maps:
        _map(fig.add_subplot(grid[row, 6]), f.maps[other][r, 3], f"final, {other} basis")
    fig.suptitle("Singular Feature Machine with an Occam Gate: generalisation (green) and "
                 "complexity (red); spectral weight maps of the learned table (log power)",
                 fontsize=10)
    return style.save(fig, f.path / "figure5" if stem is None else stem)


def penalty_sweep(folder, stem=None, *, seed: int | None = None):
  """Accuracy and λ_A per η, the delay and final λ_A against η (default folder/penalty_sweep)."""
  f = load(folder)
  ops, penalties = f.config["ops"], f.config["penalties"]
  seed = f.config["seeds"][0] if seed is None else seed
  colours = plt.cm.viridis(np.linspace(0, 0.9, len(penalties)))
  with plt.rc_context(style.RC):
    fig, axes = plt.subplots(2, len(ops) + 1, figsize=(3.6 * (len(ops) + 1), 6), squeeze=False)
    for col, op in enumerate(ops):
      for c, eta in zip(colours, penalties):
        r = f.run_index(op, eta, seed)
        steps, te = _series(f.table, r, "test_acc")
        _, llc = _series(f.table, r, "complexity/llc")
        axes[0, col].plot(steps + 1, te, color=c, label=f"η={eta:g}")
        axes[1, col].plot(steps + 1, llc, color=c)
      axes[0, col].set_title(f"{op} (seed {seed})", fontsize=9)
      axes[0, col].set_ylabel("test accuracy")
      axes[1, col].set_ylabel("λ_A")
      axes[1, col].set_yscale("log")
      for ax in axes[:, col]:
        style.step_axis(ax, "step + 1")
    axes[0, 0].legend(fontsize=7)
    _delay_panel(axes[0, -1], f)
    _final_llc_panel(axes[1, -1], f)
    fig.tight_layout()
    return style.save(fig, f.path / "penalty_sweep" if stem is None else stem)


def _numbers(column) -> np.ndarray:
  """A summary.csv column whose empty cells mean 'never': floats with NaN."""
  return np.array([float(v) if v != "" else np.nan for v in column])


def _penalty_axis(ax, values) -> None:
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xticks(sorted(set(values)))
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
  ax.set_xlabel("penalty strength η")


def _final_llc_panel(ax, f: Folder) -> None:
  """λ_A at the last step against η per op, next to p²/2, n/2 and p/2."""
  s = f.summary
  eta = s["penalty"].astype(float)
  x = np.where(eta > 0, eta, np.nan)
  for op in f.config["ops"]:
    ax.plot(x[s["op"] == op], s["llc_final"][s["op"] == op], "o", label=op)
  _references(ax, f.config["p"], float(s["n_train"][0]),
              np.nanmin(x) if np.isfinite(x).any() else 1, scale=1.1)
  _penalty_axis(ax, x[np.isfinite(x)].tolist())
  ax.set_ylabel("final λ_A")
  ax.set_title("complexity at the end (η = 0 stays at (n + p − 1)/2)", fontsize=9)
  ax.legend(fontsize=7)


def _delay_panel(ax, f: Folder) -> None:
  """Generalisation step against η per op, with 1/(λ·lr) (dashed) and memorisation."""
  s = f.summary
  eta = s["penalty"].astype(float)
  gen, mem = _numbers(s["generalised_step"]), _numbers(s["memorised_step"])
  pos = eta > 0
  for op in f.config["ops"]:
    sel = (s["op"] == op) & pos
    ax.plot(eta[sel], gen[sel], "o", label=f"{op}: test ≥ 0.95")
  ax.plot(eta[pos], mem[pos], "x", color=GREY, label="train ≥ 0.99 (all)")
  grid = np.geomspace(eta[pos].min(), eta[pos].max(), 20) if pos.any() else np.array([1.0])
  n = float(s["n_train"][0])
  ax.plot(grid, 2 * n / (grid * math.log(n) * f.config["lr"]), "k--", lw=1, label="1/(λ·lr)")
  _penalty_axis(ax, eta[pos].tolist())
  ax.set_ylabel("step")
  ax.set_title("delay vs penalty (η = 0: never)", fontsize=9)
  ax.legend(fontsize=7)


TRANSFORMER_PROXIES = (("llc.csv", "llc_mean", "LLC (first sampler)"),
                       ("metrics.csv", "spectral_entropy/all", "spectral entropy"),
                       ("measures.csv", "bdm/2d/total", "BDM (2-D)"),
                       ("measures.csv", "block_gzip/total", "block-gzip"))


def unit(v: np.ndarray) -> np.ndarray:
  """(v − min) / (max − min): each proxy on [0, 1], so falls of any size share an axis."""
  lo, hi = np.nanmin(v), np.nanmax(v)
  return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def comparison(folder, transformer_dir: str | os.PathLike | None, stem=None, *,
               op: str | None = None, penalty: float | None = None):
  """Normalised proxies of the SFM next to those of a transformer run folder; [png, pdf]
  (default folder/comparison), or None if that folder has no metrics.csv."""
  if transformer_dir is None or not (pathlib.Path(transformer_dir) / "metrics.csv").is_file():
    return None
  f = load(folder)
  tdir = pathlib.Path(transformer_dir)
  metrics = runio.read_csv(tdir / "metrics.csv")
  ops = f.config["ops"]
  op = op or (ops[0] if ops[0] in set(metrics["op"]) else str(metrics["op"][0]))
  with plt.rc_context(style.RC):
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    if op in ops:
      eta = pick_penalty(f.config["penalties"], penalty)
      r = f.run_index(op, eta, f.config["seeds"][0])
      steps, te = _series(f.table, r, "test_acc")
      left.plot(steps + 1, te, color=GREEN, lw=2, label="test acc")
      for column, ls, label in (("complexity/llc", "-", "λ_A"),
                                ("spectral/entropy", "--", "spectral entropy (table)")):
        left.plot(steps + 1, unit(_series(f.table, r, column)[1]), color=RED, ls=ls, label=label)
      left.set_title(f"SFM: {op}, η={eta:g}", fontsize=9)
    _transformer_panel(right, tdir, metrics, op)
    for ax in (left, right):
      style.step_axis(ax, "step + 1")
      ax.legend(fontsize=7)
    left.set_ylabel("accuracy;  (proxy − min) / (max − min)")
    fig.tight_layout()
    return style.save(fig, f.path / "comparison" if stem is None else stem)


def _transformer_panel(ax, tdir: pathlib.Path, metrics: dict, op: str) -> None:
  wd = float(np.max(metrics["weight_decay"]))
  seed = int(np.min(metrics["seed"]))
  keep = lambda t: (t["op"] == op) & (t["weight_decay"] == wd) & (t["seed"] == seed)
  sel = keep(metrics)
  order = np.argsort(metrics["step"][sel])
  ax.plot(metrics["step"][sel][order] + 1, metrics["test_acc"][sel][order], color=GREEN, lw=2,
          label="test acc")
  styles = iter(style.SEED_STYLES)
  for file, column, label in TRANSFORMER_PROXIES:
    path = tdir / file
    t = runio.read_csv(path) if path.is_file() else {}
    if column not in t:
      continue
    s = keep(t)
    if "sampler" in t:  # llc.csv may hold several samplers per step: the first one
      s &= t["sampler"] == t["sampler"][0]
    o = np.argsort(t["step"][s])
    v = t[column][s][o].astype(float)
    if len(v):
      ax.plot(t["step"][s][o] + 1, unit(v), color=RED, ls=next(styles), label=label)
  ax.set_title(f"transformer: {op}, wd={wd:g}, seed={seed} ({tdir.name})", fontsize=9)
