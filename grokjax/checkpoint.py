"""Orbax checkpoints of a sweep, and loading their parameters for the lenses.

A run folder keeps two orbax `CheckpointManager`s under `checkpoints/`:
  `params/`  the stacked parameters of every run ([runs, ...] leaves) at every step
             grokjax.ckpt_schedule saves: step 0, the last step, fixed, log-spaced
             and metric-triggered steps;
  `state/`   the full stacked TrainState (params, optimizer state, step), the latest
             two only, to resume an interrupted sweep.

`load_runs` is the one loader (steps x runs); `load_params` (one run at one step) and
`load_stacked_params` (every run at one step) are built on it, and
`runio.RunFolder.params` calls it with the folder's parsed config.

Orbax does not verify what it reads back, so each manager's folder also holds
`digests.json`: step -> SHA-256 of the tree given to `save` (each host numpy leaf's
dtype, shape and bytes, in tree order), computed from that in-memory tree and written
(atomically, by the writing process) when `save` is called, independently of when orbax
finalises the step, so it holds for asynchronous saves as well. `restore` recomputes the
digest of what it read and raises CheckpointError on a mismatch. Steps saved without a
digest (folders from before digests) are restored unchecked.

>>> # params = load_params("runs/demo", 2000, op="sub", seed=42, weight_decay=1.0)
"""

from __future__ import annotations

import hashlib
import os
import pathlib
from typing import Sequence

import jax
import numpy as np
import orbax.checkpoint as ocp

from grokjax import multihost, runio
from grokjax.config import SweepConfig
from grokjax.errors import CheckpointError, RunFolderError

PARAMS, STATE = "params", "state"
DIGESTS = "digests.json"


def manager(run_dir, kind: str, *, read_only: bool = False, max_to_keep: int | None = None,
            async_save: bool = False):
  """An orbax manager of checkpoints/<kind>.

  `async_save`: `save` returns once the host copy is handed over and a thread writes it;
  orbax writes each step into `<step>.orbax-checkpoint-tmp` and renames it when done, so
  an interrupted save is never listed by `all_steps` (and is removed by the next writer
  manager), and each save waits for the previous one of its manager to finish.
  """
  path = pathlib.Path(run_dir).resolve() / "checkpoints" / kind
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, read_only=read_only,
                                         create=not read_only,
                                         cleanup_tmp_directories=not read_only,
                                         enable_async_checkpointing=async_save)
  return ocp.CheckpointManager(path, options=options)


def _existing_manager(run_dir, kind: str):
  path = pathlib.Path(run_dir) / "checkpoints" / kind
  if not path.is_dir():
    raise CheckpointError(f"no checkpoints in {run_dir}: {path} does not exist")
  return manager(run_dir, kind, read_only=True)


def list_steps(run_dir: str | os.PathLike) -> list[int]:
  """The steps at which the parameters of a sweep were saved, ascending."""
  return sorted(_existing_manager(run_dir, PARAMS).all_steps())


def digest(tree) -> str:
  """SHA-256 over the leaves of a tree of host arrays: dtype, shape and bytes, in tree order."""
  h = hashlib.sha256()
  for leaf in jax.tree.leaves(tree):
    a = np.ascontiguousarray(np.asarray(leaf))
    h.update(f"{a.dtype.str}{a.shape};".encode())
    h.update(a.reshape(-1).view(np.uint8).data)
  return h.hexdigest()


def _digest_file(root) -> pathlib.Path:
  return pathlib.Path(root) / DIGESTS


def read_digests(root) -> dict[int, str]:
  """step -> digest of a manager folder (checkpoints/<kind>); {} where it has none."""
  path = _digest_file(root)
  if not path.is_file():
    return {}
  try:
    record = runio.read_json(path)
    return {int(k): str(v) for k, v in record.items()}
  except (RunFolderError, AttributeError, ValueError) as e:
    raise CheckpointError(f"{path} is corrupted ({e}); restore it or delete it to load the "
                          "checkpoints unchecked") from e


def _write_digests(root, digests: dict[int, str]) -> None:
  runio.write_json(_digest_file(root), {str(k): v for k, v in sorted(digests.items())})


def save(mgr: ocp.CheckpointManager, step: int, tree) -> None:
  """Saves a host copy (numpy) of `tree` at `step`, and its digest in digests.json.

  The digest is of the tree in memory and is written before orbax writes the step, so
  no finished step lacks its digest and an asynchronous save needs no wait. The digest
  of a step the manager dropped (max_to_keep) goes at the next save.
  """
  saved = mgr.all_steps()
  if multihost.is_writer() and step not in saved:  # a saved step: orbax refuses it below
    root = pathlib.Path(mgr.directory)
    oldest = min([step, *saved])
    digests = {s: d for s, d in read_digests(root).items() if s >= oldest}
    _write_digests(root, {**digests, step: digest(tree)})
  mgr.save(step, args=ocp.args.StandardSave(tree))


def restore(run_dir, kind: str, step: int, like):
  """Restores the tree saved at `step`, with the structure and shapes of `like`.

  CheckpointError where orbax cannot read it or where it does not match the digest
  recorded when it was saved (a step without a recorded digest is not checked).
  """
  mgr = _existing_manager(run_dir, kind)
  if step not in mgr.all_steps():
    saved = sorted(mgr.all_steps())
    raise CheckpointError(f"step {step} was not saved in {run_dir} ({kind}); saved: {saved}")
  abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype), like)
  path = pathlib.Path(run_dir) / "checkpoints" / kind / str(step)
  want = read_digests(path.parent).get(step)
  try:
    tree = mgr.restore(step, args=ocp.args.StandardRestore(abstract))
  except (ValueError, KeyError, OSError, RuntimeError, TypeError) as e:
    raise CheckpointError(f"checkpoint {path} is missing or corrupted: {type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}") from e
  if want is not None and digest(tree) != want:
    raise CheckpointError(f"checkpoint {path} does not match its checksum (corrupted on disk)")
  return tree


def discard_after(run_dir, step: int) -> None:
  """Deletes every saved step after `step` (params and state) with its digest, so that a
  sweep resumed from `step` saves them again. Every process calls it (orbax syncs)."""
  for kind in (PARAMS, STATE):
    mgr = manager(run_dir, kind)
    later = [s for s in mgr.all_steps() if s > step]
    for s in later:
      mgr.delete(s)
    if later and multihost.is_writer():
      digests = read_digests(mgr.directory)
      _write_digests(mgr.directory, {s: d for s, d in digests.items() if s <= step})
    mgr.close()


def load_runs(run_dir: str | os.PathLike, cfg: SweepConfig, steps: Sequence[int],
              runs: Sequence[int]):
  """Parameters of `runs` at `steps` as one pytree of numpy leaves [len(steps), len(runs), ...].

  The one loader of saved parameters: each step's checkpoint (every run, stacked) is
  read once and the asked runs are taken from it. `cfg` is the folder's SweepConfig.
  """
  from grokjax.model import init_params  # heavy import kept out of list_steps

  one = jax.eval_shape(lambda: init_params(cfg.model_config, jax.random.key(0)))
  like = jax.tree.map(lambda a: np.zeros((len(cfg.runs), *a.shape), a.dtype), one)
  idx = np.asarray(runio.check_runs(cfg, runs), np.int64)
  per_step = [jax.tree.map(lambda a: np.asarray(a)[idx], restore(run_dir, PARAMS, s, like))
              for s in steps]
  return jax.tree.map(lambda *a: np.stack(a), *per_step)


def load_stacked_params(run_dir: str | os.PathLike, step: int):
  """Parameters of every run of a sweep at `step`, stacked on a leading runs axis."""
  cfg = runio.load_config(run_dir)
  params = load_runs(run_dir, cfg, [step], range(len(cfg.runs)))
  return jax.tree.map(lambda a: a[0], params)


def load_params(run_dir: str | os.PathLike, step: int, *, op: str | None = None,
                seed: int | None = None, weight_decay: float | None = None,
                lr: float | None = None, train_frac: float | None = None,
                index: int | None = None):
  """Parameters of ONE run at `step`, chosen by its fields (or by `index`), as a pytree."""
  cfg = runio.load_config(run_dir)
  if index is None:
    index = runio.find_run(cfg, op=op, seed=seed, weight_decay=weight_decay, lr=lr,
                           train_frac=train_frac)
  return jax.tree.map(lambda a: a[0, 0], load_runs(run_dir, cfg, [step], [index]))
