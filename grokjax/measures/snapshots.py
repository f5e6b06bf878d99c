"""The snapshot lens: the arrays the report draws for one run at a few steps.

Per run of the first seed and per chosen step: the number embeddings on the plane of
their strongest Fourier frequency and on their top two principal components, the
4-level quantile code of one weight matrix (what BDM scores) and, for group ops, the
Occam-gate maps (see `snapshot_fn`). They are stored in one npz file, `snapshots.npz`:

  steps [S], runs [R]       the steps and run indices it holds
  matrix_name []            the quantised weight matrix
  format []                 FORMAT, bumped when snapshot_fn's arrays change
  'kind|run|step'           one array per kind (embedding, freq, cyclic, pca, matrix,
                            occam, diag, occam_class, class_diag), run and step

>>> # folder = runio.RunFolder.open("runs/demo")
>>> # save(folder.path / FILE, compute(folder, [100, 1000], matrix="tok_embed"))
>>> # load(folder.path / FILE).get("embedding", run=0, step=100).shape
>>> # (97, 2)
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Callable, Sequence

import numpy as np

from grokjax.config import SweepConfig

FILE = "snapshots.npz"
FORMAT = 2  # bumped when snapshot_fn's arrays change, so old files are recomputed
KINDS = ("embedding", "freq", "cyclic", "pca", "matrix", "occam", "diag", "occam_class",
         "class_diag")


def snapshot_fn(cfg: SweepConfig, op: str, matrix: str):
  """jit of params -> the arrays the report draws for one run at one step.

  embedding: [N, 2] number embeddings (op's basis) on the plane of their strongest
  Fourier frequency (freq, cyclic = share of variance on that plane); pca: the same
  rows on their top two principal components; matrix: the 4-level quartile code of
  one weight matrix (what BDM scores); occam: the 2-D DFT power of the correct-answer
  logit table (diag = share on the op's diagonal family); occam_class: the same pooled
  over the per-class logit tables (class_diag), which lack the answer table's
  per-output-token offset (see grokjax.measures.fourier).
  """
  import jax
  import jax.numpy as jnp

  from grokjax.measures import complexity, fourier
  from grokjax.model import weight_matrices

  mc, p = cfg.model_config, cfg.p
  basis = fourier.resolve_basis(op, "auto")

  def one(params):
    rows = fourier.in_basis(fourier.number_rows(params, p)[0], basis=basis)
    cyc = fourier.cyclic_structure(rows, n_planes=1)
    centred = rows - rows.mean(axis=0)
    pcs = jnp.linalg.svd(centred, full_matrices=False)[2][:2]
    out = {"embedding": cyc["fourier/coords"][0], "freq": cyc["fourier/plane_freqs"][0],
           "cyclic": cyc["fourier/cyclic_score"], "pca": centred @ pcs.T,
           "matrix": complexity.quantise(weight_matrices(params)[matrix])}
    if op in fourier.GROUP_OPS:
      table, classes = fourier.logit_tables(mc, params, p=p, op=op)
      occ = fourier.occam_gate(table, op=op, basis=basis)
      cls = fourier.occam_gate(classes, op=op, basis=basis, prefix="class")
      out.update(occam=occ["occam/power"], diag=occ["occam/diag_fraction"],
                 occam_class=cls["class/power"], class_diag=cls["class/diag_fraction"])
    return out

  return jax.jit(one)


def compute(folder, steps: Sequence[int], *, matrix: str,
            write: Callable[[str], None] = print) -> dict[str, np.ndarray]:
  """Snapshot arrays of the first seed's runs of a RunFolder at `steps`, keyed 'kind|run|step'."""
  import jax

  cfg = folder.cfg
  runs = [i for i, s in enumerate(cfg.runs) if s.seed == cfg.seeds[0]]
  fns = {op: snapshot_fn(cfg, op, matrix) for op in {cfg.runs[i].op for i in runs}}
  arrays = {"steps": np.asarray(steps), "runs": np.asarray(runs),
            "matrix_name": np.asarray(matrix), "format": np.asarray(FORMAT)}
  for step in steps:
    params = folder.params([step], runs)
    for k, r in enumerate(runs):
      res = jax.device_get(fns[cfg.runs[r].op](jax.tree.map(lambda a: a[0, k], params)))
      arrays.update({f"{kind}|{r}|{step}": np.asarray(v) for kind, v in res.items()})
    write(f"snapshots: step {step} ({len(runs)} runs)")
  return arrays


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
  from grokjax import runio

  with runio.atomic_write(path, "wb") as f:  # a killed write leaves the old file
    np.savez_compressed(f, **arrays)


@dataclasses.dataclass(frozen=True)
class Snapshots:
  """A snapshots.npz file read back: its header and its arrays."""

  steps: tuple[int, ...]
  runs: tuple[int, ...]
  matrix_name: str
  format: int
  arrays: dict[str, np.ndarray]

  def get(self, kind: str, *, run: int, step: int) -> np.ndarray | None:
    """One array, or None where the file has none (e.g. no Occam map for a polynomial op)."""
    return self.arrays.get(f"{kind}|{run}|{step}")

  def current(self, steps: Sequence[int], matrix: str) -> bool:
    """Whether this file is what `compute(..., steps, matrix=matrix)` would write now."""
    return (self.format == FORMAT and self.matrix_name == matrix
            and set(self.steps) == set(steps))


def load(path: str | os.PathLike) -> Snapshots | None:
  """The snapshots in `path`, or None where the file does not exist.

  A file older than the format field reads as format 0 (so `current` is False). A file
  that is not a whole npz (cut off, edited) raises RunFolderError.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  from grokjax import runio

  head = ("steps", "runs", "matrix_name", "format")
  arrays = runio.read_npz(path, head[:3])
  return Snapshots(steps=tuple(arrays["steps"].tolist()), runs=tuple(arrays["runs"].tolist()),
                   matrix_name=str(arrays["matrix_name"]),
                   format=int(arrays["format"]) if "format" in arrays else 0,
                   arrays={k: v for k, v in arrays.items() if k not in head})
