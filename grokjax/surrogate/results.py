"""Summaries of a surrogate sweep and its run folder.

Per run (`summarize`): the memorisation step (first eval with train accuracy ≥ 0.99),
the generalisation step (first eval with test accuracy ≥ 0.95), their ratio (the
delay), the cleanup time predicted by the gate price alone, 1/(λ·lr) steps (a gate
whose fit gradient is negligible closes at rate λ·lr per step), the complexity proxy
at start / memorisation / end with the open group features by name, and the
reference values p²/2 (a lookup over all pairs, the paper's number), n/2 (our
memorising family), (p − 1)/2 (the full group family) and p/2 (the paper's number).

Run folder (`write_run_folder`): config.json (the SurrogateConfig, package versions,
git commit, devices), surrogate.csv (tidy: one row per run × eval step), summary.csv
(one row per run) and maps.npz (the spectral maps of every run at four moments:
init, memorised, switch, final; `moment_index` points into `steps`; `own_basis` names
the map each run's group is diagonal in), which `grokjax.figures.surrogate` draws.
"""

from __future__ import annotations

import json
import math
import os
import pathlib

import jax
import numpy as np

from grokjax import folder, runio
from grokjax.analysis.tables import first_step_at
from grokjax.errors import RunFolderError
from grokjax.surrogate import characters, model
from grokjax.surrogate.train import SurrogateConfig, SurrogateResult

MEMORISED, SWITCH, GENERALISED = 0.99, 0.5, 0.95
MOMENTS = ("init", "memorised", "switch", "final")


def run_series(rows: list[dict], run: int, column: str) -> tuple[np.ndarray, np.ndarray]:
  """(steps, values) of one run's column, in step order."""
  sel = sorted((r["step"], r[column]) for r in rows if r["run"] == run)
  return np.array([s for s, _ in sel]), np.array([v for _, v in sel], dtype=float)


def moment_index(steps: np.ndarray, train_acc: np.ndarray, test_acc: np.ndarray) -> list[int]:
  """Eval indices of the four moments; a missing switch falls at the log-midpoint
  between memorisation and the end."""
  last = len(steps) - 1
  mem = np.flatnonzero(train_acc >= MEMORISED)
  mem = int(mem[0]) if len(mem) else last // 2
  switch = np.flatnonzero((test_acc >= SWITCH) & (np.arange(len(steps)) >= mem))
  if len(switch):
    switch = int(switch[0])
  else:
    mid = math.sqrt(max(steps[mem], 1) * max(steps[last], 1))
    switch = int(np.argmin(np.abs(np.log(np.maximum(steps, 1)) - math.log(mid))))
  return [0, mem, switch, last]


def open_group_features(cfg: SurrogateConfig, result: SurrogateResult, run: int) -> list[str]:
  op = cfg.runs[run][0]
  gates = np.asarray(result.final_params["group"]["gate"][run])
  names = characters.feature_names(op, cfg.p)
  return [names[k] for k in np.flatnonzero(gates > 0)]


def summarize(cfg: SurrogateConfig, result: SurrogateResult) -> list[dict]:
  out = []
  for r, (op, eta, seed) in enumerate(cfg.runs):
    steps, tr = run_series(result.rows, r, "train_acc")
    _, te = run_series(result.rows, r, "test_acc")
    _, llc = run_series(result.rows, r, "complexity/llc")
    _, ent = run_series(result.rows, r, "spectral/entropy")
    n = int(result.final_params["mem"]["gate"].shape[1])
    mem, gen = first_step_at(steps, tr, MEMORISED), first_step_at(steps, te, GENERALISED)
    i_mem = 0 if mem is None else int(np.searchsorted(steps, mem))
    price = model.penalty_price(eta, n)
    last = {k: v for k, v in result.rows[-len(cfg.runs) + r].items()}
    out.append({
        "run": r, "op": op, "penalty": eta, "seed": seed, "n_train": n,
        "memorised_step": mem, "generalised_step": gen,
        "delay_ratio": gen / max(mem, 1) if (gen is not None and mem is not None) else None,
        "cleanup_steps_predicted": 1.0 / (price * cfg.lr) if price > 0 else None,
        "test_acc_at_memorised": float(te[i_mem]),
        "llc_init": float(llc[0]), "llc_memorised": float(llc[i_mem]), "llc_final": float(llc[-1]),
        "mem_open_final": last["gates/mem_open"], "group_open_final": last["gates/group_open"],
        "group_features_final": " ".join(open_group_features(cfg, result, r)),
        "train_acc_final": float(tr[-1]), "test_acc_final": float(te[-1]),
        "entropy_init": float(ent[0]), "entropy_memorised": float(ent[i_mem]),
        "entropy_final": float(ent[-1]), "diag_fraction_final": last["spectral/diag_fraction"],
        "ref_p2_half": cfg.p ** 2 / 2, "ref_mem_family": n / 2,
        "ref_group_family": (cfg.p - 1) / 2, "ref_p_half": cfg.p / 2})
  return out


def own_basis(op: str) -> str:
  """'dlog' for the multiplicative ops (diagonal after discrete-log re-indexing), else
  'natural'."""
  return "dlog" if characters.GROUPS[op][0] == "dlog" else "natural"


def map_moments(cfg: SurrogateConfig, result: SurrogateResult) -> dict[str, np.ndarray]:
  """maps.npz content: steps, moment_index [R, 4], each map at the moments [R, 4, ...], the
  moments' names and own_basis [R] (the basis each run's group is diagonal in)."""
  index = []
  for r in range(len(cfg.runs)):
    steps, tr = run_series(result.rows, r, "train_acc")
    _, te = run_series(result.rows, r, "test_acc")
    index.append(moment_index(steps, tr, te))
  index = np.array(index, np.int64)
  runs = np.arange(len(cfg.runs))[:, None]
  out = {"steps": np.asarray(result.steps), "moment_index": index, "moments": np.array(MOMENTS),
         "own_basis": np.array([own_basis(op) for op, _, _ in cfg.runs])}
  out.update({k: v[index, runs] for k, v in result.maps.items()})
  return out


def check_out_dir(out_dir: str | os.PathLike, *, overwrite: bool = False) -> pathlib.Path:
  """The run folder to write; RunFolderError if it holds files and overwrite is off, or
  with overwrite when it is not a surrogate run folder (grokjax.folder.kind): a training
  run folder's config.json replaced by a surrogate's would break every lens on it."""
  out = pathlib.Path(out_dir)
  folder.check_target(out)
  if not folder.entries(out):
    return out
  if not overwrite:
    raise RunFolderError(f"{out} exists and is not empty (pass --overwrite to replace its files)")
  folder.check_replaceable(out, "surrogate")
  return out


def write_run_folder(cfg: SurrogateConfig, result: SurrogateResult, out_dir: str | os.PathLike,
                     *, overwrite: bool = False) -> pathlib.Path:
  """Writes the run folder (see the module docstring); with `overwrite`, an existing
  surrogate run folder's files are deleted first, so that none of an older run is left."""
  out = check_out_dir(out_dir, overwrite=overwrite)
  with folder.lock(out):
    out = check_out_dir(out_dir, overwrite=overwrite)
    folder.clear(out)  # empty, or a surrogate folder that overwrite replaces
    _write_files(cfg, result, out)
  return out


def _write_files(cfg: SurrogateConfig, result: SurrogateResult, out: pathlib.Path) -> None:
  record = {
      "config": cfg.to_dict(),
      "runs": [{"run": i, "op": op, "penalty": eta, "seed": seed}
               for i, (op, eta, seed) in enumerate(cfg.runs)],
      "model": "grokjax.surrogate: Singular Feature Machine with an L1 box Occam Gate "
               "(our reconstruction, see the module docstrings)",
      **runio.provenance([str(d) for d in jax.devices()])}
  (out / "config.json").write_text(json.dumps(record, indent=2) + "\n")
  runio.write_csv(out / "surrogate.csv", result.rows)
  runio.write_csv(out / "summary.csv", [{k: ("" if v is None else v) for k, v in row.items()}
                                        for row in summarize(cfg, result)])
  np.savez_compressed(out / "maps.npz", **map_moments(cfg, result))


def load_config(run_dir: str | os.PathLike) -> SurrogateConfig:
  path = pathlib.Path(run_dir) / "config.json"
  if not path.is_file():
    raise RunFolderError(f"{run_dir} is not a surrogate run folder: {path} does not exist")
  try:
    return SurrogateConfig.from_dict(json.loads(path.read_text())["config"])
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise RunFolderError(f"cannot read {path}: {e}") from e
