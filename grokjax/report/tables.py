"""The run folder's tables, the registry of measures, and the saved snapshot arrays.

`load_tables` reads every tidy table a lens may have written (None where it did
not run); `MEASURES` lists the measure columns the report analyses, each with the
paper's claim about its direction through grokking; `snapshot_list` reads the
arrays snapshots.npz holds for the snapshot figures.

>>> [m[1] for m in MEASURES if m[0] == "llc"]
['llc_mean']
"""

from __future__ import annotations

import pathlib

import numpy as np

from grokjax import analysis, runio

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
    ("measures", "progress/restricted_loss", "restricted loss (key frequencies only)", -1),
    ("measures", "progress/excluded_loss", "excluded loss (key frequencies removed)", 1),
    ("measures", "progress/gini", "Fourier Gini of the neuron-logit map", 1),
    ("llc", "llc_mean", "local learning coefficient (LLC)", -1),
    ("causal", "causal/top_head_share", "causal: top head's share of |effect|", 1),
)


def read_if(path: pathlib.Path, numeric=None) -> dict | None:
  return runio.read_csv(path, numeric=numeric) if path.is_file() else None


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
  t = {name: read_if(d / f"{name}.csv", runio.measures_numeric if name == "measures" else None)
       for name in ("metrics", "measures", "llc", "causal", "causal_ablation", "llc_invariance")}
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



def labels() -> dict[str, str]:
  """Measure column -> its label in captions and sentences."""
  return {col: label for _, col, label, _ in MEASURES}


def py(x):
  """A numpy scalar as the Python scalar (for table rows)."""
  return x.item() if isinstance(x, np.generic) else x


def snapshot_list(run_dir, metrics: dict, kind: str) -> list[dict]:
  """[{op, weight_decay, seed, step, array, note}] from run_dir/snapshots.npz ([] if absent)."""
  path = pathlib.Path(run_dir) / "snapshots.npz"
  if not path.is_file():
    return []
  out = []
  analysed = set(analysis.runs_of(metrics))  # a diverged run's rows are left out of metrics
  z = runio.read_npz(path, ("runs", "steps"))
  for run in z["runs"].tolist():
    if run not in analysed:
      continue
    info = analysis.run_info(metrics, run)
    for step in z["steps"].tolist():
      key = f"{kind}|{run}|{step}"
      if key in z:
        out.append({**info, "step": step, "array": z[key], "note": _note(z, kind, run, step)})
  return out


def _note(z, kind: str, run: int, step: int) -> str:
  if kind == "embedding":
    return f"k={int(z[f'freq|{run}|{step}'])}, cyclic {float(z[f'cyclic|{run}|{step}']):.2f}"
  if kind == "occam":
    return f"diagonal share {float(z[f'diag|{run}|{step}']):.2f}"
  if kind == "occam_class":
    return f"diagonal share {float(z[f'class_diag|{run}|{step}']):.2f}"
  return ""


def snapshot_matrix(run_dir) -> str:
  """The name of the weight matrix whose 4-level code snapshots.npz holds."""
  path = pathlib.Path(run_dir) / "snapshots.npz"
  return str(runio.read_npz(path, ("matrix_name",))["matrix_name"])
