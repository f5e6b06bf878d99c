"""Figures of a surrogate run folder (they read its tables; nothing is recomputed).

* `figure5`: the paper's Figure 5 in our terms, one row per op: left, test accuracy
  (green) against the complexity proxies (red: λ_A = learning coefficient of the
  active set, and the free energy divided by log n) on a log step axis, with the
  reference values p²/2, n/2 and p/2; right, the spectral weight maps of the learned
  table at four moments (init, memorised, switch, final) in the op's group basis, and
  the final map in the other basis (mul/div are diagonal only after discrete-log
  re-indexing).
* `penalty_sweep`: test accuracy and λ_A for every penalty strength η, and the
  generalisation step against η next to the predicted cleanup time 1/(λ·lr).
* `comparison`: the same proxies, each rescaled to [0, 1], for the SFM and for a
  transformer run folder (metrics.csv, and llc.csv / measures.csv when they exist) on
  the same axes.

    python -m experiments.surrogate --out=runs/surrogate   # draws all three
"""

from __future__ import annotations

import math
import os
import pathlib

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from grokjax import runio  # noqa: E402
from grokjax.surrogate import characters, results  # noqa: E402

GREEN, RED, GREY = "#1a9641", "#d7191c", "#777777"


def _load(run_dir):
  run_dir = pathlib.Path(run_dir)
  cfg = results.load_config(run_dir)
  table = runio.read_csv(run_dir / "surrogate.csv")
  summary = runio.read_csv(run_dir / "summary.csv")
  maps = dict(np.load(run_dir / "maps.npz"))
  return run_dir, cfg, table, summary, maps


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


def _run_index(cfg, op: str, penalty: float, seed: int) -> int:
  return cfg.runs.index((op, penalty, seed))


def _save(fig, path: pathlib.Path) -> pathlib.Path:
  fig.savefig(path, dpi=130, bbox_inches="tight")
  fig.savefig(path.with_suffix(".pdf"), bbox_inches="tight")
  plt.close(fig)
  return path


def _curves(ax, cfg, table, run: int, n: int, moment_steps, label_right: bool) -> None:
  steps, te = _series(table, run, "test_acc")
  _, tr = _series(table, run, "train_acc")
  x = steps + 1
  ax.plot(x, te, color=GREEN, lw=2, label="test acc")
  ax.plot(x, tr, color=GREEN, lw=1, ls="--", alpha=0.6, label="train acc")
  ax.set_xscale("log")
  ax.set_ylim(-0.02, 1.08)
  ax.set_xlabel("step + 1", fontsize=8)
  ax.set_ylabel("accuracy", color=GREEN, fontsize=8)
  red = ax.twinx()
  for column, style, label in (("complexity/llc", "-", "λ_A = |A|/2"),
                               ("complexity/gate_mass", ":", "Σg/2 (relaxed)")):
    red.plot(x, _series(table, run, column)[1], color=RED, lw=2 if style == "-" else 1.5,
             ls=style, label=label)
  _, fe = _series(table, run, "free_energy")
  red.plot(x, fe / math.log(n), color=RED, lw=1, ls="--", label="free energy / log n")
  red.set_yscale("log")
  if label_right:
    red.set_ylabel("learning-coefficient units", color=RED, fontsize=8)
  for value, name in ((cfg.p ** 2 / 2, "p²/2"), (n / 2, "n/2"), (cfg.p / 2, "p/2")):
    red.axhline(value, color=GREY, lw=0.8, ls=":")
    red.text(x[0], value * 1.08, f"{name}={value:g}", color=GREY, fontsize=6, va="bottom")
  for label, s in zip("abcd", moment_steps):
    ax.axvline(s + 1, color=GREY, lw=0.6)
    ax.text(s + 1, 1.02, label, fontsize=8, ha="center", va="bottom", color=GREY)
  lines = ax.get_lines()[:2] + red.get_lines()[:3]
  ax.legend(lines, [l.get_label() for l in lines], fontsize=6, loc="center left")


def _map(ax, power, title: str) -> None:
  img = np.log10(np.fft.fftshift(power) + 1e-12)
  ax.imshow(img, cmap="magma", vmin=img.max() - 6, vmax=img.max(), interpolation="nearest")
  ax.set_title(title, fontsize=7)
  ax.set_xticks([])
  ax.set_yticks([])


def figure5(run_dir, *, penalty: float | None = None, seed: int | None = None,
            name: str = "figure5.png") -> pathlib.Path:
  run_dir, cfg, table, summary, maps = _load(run_dir)
  eta = pick_penalty(cfg.penalties, penalty)
  seed = cfg.seeds[0] if seed is None else seed
  fig = plt.figure(figsize=(16, 3.3 * len(cfg.ops) + 0.6))
  grid = fig.add_gridspec(len(cfg.ops), 7, width_ratios=[3.2, 0.45, 1, 1, 1, 1, 1],
                          hspace=0.55, wspace=0.15)
  for row, op in enumerate(cfg.ops):
    r = _run_index(cfg, op, eta, seed)
    own = "dlog" if characters.GROUPS[op][0] == "dlog" else "natural"
    other = "natural" if own == "dlog" else "dlog"
    idx = maps["moment_index"][r]
    n = int(summary["n_train"][r])
    _curves(fig.add_subplot(grid[row, 0]), cfg, table, r, n, maps["steps"][idx], row == 0)
    fig.axes[-2].set_title(f"{op}  (p={cfg.p}, η={eta:g}, seed={seed})", fontsize=9)
    _, ent = _series(table, r, "spectral/entropy")
    for j, (label, moment) in enumerate(zip("abcd", results.MOMENTS)):
      step = int(maps["steps"][idx[j]])
      _map(fig.add_subplot(grid[row, 2 + j]), maps[own][r, j],
           f"{label}) {moment}, step {step}\n{own} basis, H={ent[idx[j]]:.2f}")
    if other in maps:
      _map(fig.add_subplot(grid[row, 6]), maps[other][r, 3], f"final, {other} basis")
  fig.suptitle("Singular Feature Machine with an Occam Gate: generalisation (green) and "
               "complexity (red); spectral weight maps of the learned table (log power)",
               fontsize=10, y=0.995)
  return _save(fig, run_dir / name)


def penalty_sweep(run_dir, *, seed: int | None = None, name: str = "penalty_sweep.png"):
  run_dir, cfg, table, summary, _ = _load(run_dir)
  seed = cfg.seeds[0] if seed is None else seed
  colors = plt.cm.viridis(np.linspace(0, 0.9, len(cfg.penalties)))
  fig, axes = plt.subplots(2, len(cfg.ops) + 1, figsize=(3.6 * (len(cfg.ops) + 1), 6),
                           squeeze=False)
  for col, op in enumerate(cfg.ops):
    for c, eta in zip(colors, cfg.penalties):
      r = _run_index(cfg, op, eta, seed)
      steps, te = _series(table, r, "test_acc")
      _, llc = _series(table, r, "complexity/llc")
      axes[0, col].plot(steps + 1, te, color=c, label=f"η={eta:g}")
      axes[1, col].plot(steps + 1, llc, color=c)
    axes[0, col].set_title(f"{op} (seed {seed})", fontsize=9)
    axes[0, col].set_ylabel("test accuracy")
    axes[1, col].set_ylabel("λ_A")
    axes[1, col].set_yscale("log")
    for ax in axes[:, col]:
      ax.set_xscale("log")
      ax.set_xlabel("step + 1")
  axes[0, 0].legend(fontsize=7)
  _delay_panel(axes[0, -1], cfg, summary)
  _final_llc_panel(axes[1, -1], cfg, summary)
  fig.tight_layout()
  return _save(fig, run_dir / name)


def _final_llc_panel(ax, cfg, summary) -> None:
  """λ_A at the last step against η per op, next to p²/2, n/2 and p/2."""
  eta = summary["penalty"].astype(float)
  x = np.where(eta > 0, eta, np.nan)
  for op in cfg.ops:
    sel = summary["op"] == op
    ax.plot(x[sel], summary["llc_final"][sel], "o", label=op)
  n = float(summary["n_train"][0])
  for value, name in ((cfg.p ** 2 / 2, "p²/2"), (n / 2, "n/2"), (cfg.p / 2, "p/2")):
    ax.axhline(value, color=GREY, lw=0.8, ls=":")
    ax.text(np.nanmin(x) if np.isfinite(x).any() else 1, value * 1.1, name, fontsize=7,
            color=GREY)
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xticks(sorted(set(x[np.isfinite(x)].tolist())))
  _plain_log_ticks(ax)
  ax.set_xlabel("penalty strength η")
  ax.set_ylabel("final λ_A")
  ax.set_title("complexity at the end (η = 0 stays at (n + p − 1)/2)", fontsize=9)
  ax.legend(fontsize=7)


def _plain_log_ticks(ax) -> None:
  ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
  ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))


def _delay_panel(ax, cfg, summary) -> None:
  """Generalisation step against η per op, with 1/(λ·lr) (dashed) and memorisation."""
  eta = summary["penalty"].astype(float)
  gen = np.array([float(v) if v != "" else np.nan for v in summary["generalised_step"]])
  mem = np.array([float(v) if v != "" else np.nan for v in summary["memorised_step"]])
  pos = eta > 0
  for op in cfg.ops:
    sel = (summary["op"] == op) & pos
    ax.plot(eta[sel], gen[sel], "o", label=f"{op}: test ≥ 0.95")
  ax.plot(eta[pos], mem[pos], "x", color=GREY, label="train ≥ 0.99 (all)")
  grid = np.geomspace(eta[pos].min(), eta[pos].max(), 20) if pos.any() else np.array([1.0])
  n = float(summary["n_train"][0])
  ax.plot(grid, 2 * n / (grid * math.log(n) * cfg.lr), "k--", lw=1, label="1/(λ·lr)")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xticks(sorted(set(eta[pos].tolist())))
  _plain_log_ticks(ax)
  ax.set_xlabel("penalty strength η")
  ax.set_ylabel("step")
  ax.set_title("delay vs penalty (η = 0: never)", fontsize=9)
  ax.legend(fontsize=7)


TRANSFORMER_PROXIES = (("llc.csv", "llc_mean", "LLC (first sampler)"),
                       ("metrics.csv", "spectral_entropy/all", "spectral entropy"),
                       ("measures.csv", "bdm/2d/total", "BDM (2-D)"),
                       ("measures.csv", "block_gzip/total", "block-gzip"))


def _unit(v: np.ndarray) -> np.ndarray:
  """(v − min) / (max − min): each proxy on [0, 1], so falls of any size share an axis."""
  lo, hi = np.nanmin(v), np.nanmax(v)
  return (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)


def comparison(run_dir, transformer_dir: str | os.PathLike | None, *, op: str | None = None,
               penalty: float | None = None, name: str = "comparison.png"):
  """Normalised proxies of the SFM next to those of a transformer run folder; None if the
  folder has no metrics.csv."""
  if transformer_dir is None or not (pathlib.Path(transformer_dir) / "metrics.csv").is_file():
    return None
  run_dir, cfg, table, _, _ = _load(run_dir)
  tdir = pathlib.Path(transformer_dir)
  metrics = runio.read_csv(tdir / "metrics.csv")
  op = op or (cfg.ops[0] if cfg.ops[0] in set(metrics["op"]) else str(metrics["op"][0]))
  eta = pick_penalty(cfg.penalties, penalty)
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
  if op in cfg.ops:
    r = _run_index(cfg, op, eta, cfg.seeds[0])
    steps, te = _series(table, r, "test_acc")
    left.plot(steps + 1, te, color=GREEN, lw=2, label="test acc")
    for column, style, label in (("complexity/llc", "-", "λ_A"),
                                 ("spectral/entropy", "--", "spectral entropy (table)")):
      left.plot(steps + 1, _unit(_series(table, r, column)[1]), color=RED, ls=style, label=label)
    left.set_title(f"SFM: {op}, η={eta:g}", fontsize=9)
  wd = float(np.max(metrics["weight_decay"]))
  seed = int(np.min(metrics["seed"]))
  keep = lambda t: (t["op"] == op) & (t["weight_decay"] == wd) & (t["seed"] == seed)
  sel = keep(metrics)
  order = np.argsort(metrics["step"][sel])
  right.plot(metrics["step"][sel][order] + 1, metrics["test_acc"][sel][order], color=GREEN, lw=2,
             label="test acc")
  styles = iter(("-", "--", ":", "-."))
  for file, column, label in TRANSFORMER_PROXIES:
    path = tdir / file
    if not path.is_file():
      continue
    t = runio.read_csv(path)
    if column not in t:
      continue
    s = keep(t)
    if "sampler" in t:  # llc.csv may hold several samplers per step: the first one
      s &= t["sampler"] == t["sampler"][0]
    o = np.argsort(t["step"][s])
    v = t[column][s][o].astype(float)
    if len(v):
      right.plot(t["step"][s][o] + 1, _unit(v), color=RED, ls=next(styles), label=label)
  right.set_title(f"transformer: {op}, wd={wd:g}, seed={seed} ({tdir.name})", fontsize=9)
  fig.tight_layout()
  for ax in (left, right):
    ax.set_xscale("log")
    ax.set_xlabel("step + 1")
    ax.legend(fontsize=7)
  left.set_ylabel("accuracy;  (proxy − min) / (max − min)")
  return _save(fig, run_dir / name)
