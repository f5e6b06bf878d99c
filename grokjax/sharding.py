"""Placing a sweep's runs axis on devices.

The runs axis is split across every device with `jax.sharding` (GSPMD partitions the
vmapped step, so runs never talk to each other). When the number of runs does not
divide the number of devices, the sweep is padded with copies of run 0 whose results
are dropped. On several processes (grokjax.multihost) the same code runs after
`jax.distributed.initialize()`: the mesh holds every process's devices, each process
computes the runs on its own devices, and `to_host` gathers the results to all of
them. The device layout does not change a run's numbers: runs are independent, so
each device runs the same per-run program wherever it lives.

>>> # mesh = runs_mesh(); tree = shard_runs(pad_runs(tree, padded_size(5, mesh)), mesh)
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def runs_mesh(devices=None) -> Mesh:
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ("runs",))


def padded_size(n_runs: int, mesh: Mesh) -> int:
  n_dev = mesh.devices.size
  return -(-n_runs // n_dev) * n_dev


def pad_runs(tree, n_padded: int):
  """Pads the leading runs axis to n_padded with copies of run 0."""
  def pad(a):
    a = np.asarray(a)
    extra = n_padded - a.shape[0]
    return a if extra == 0 else np.concatenate([a, np.repeat(a[:1], extra, axis=0)])
  return jax.tree.map(pad, tree)


def shard_runs(tree, mesh: Mesh):
  """Puts a host tree with a leading (padded) runs axis on the mesh, split along it."""
  spec = NamedSharding(mesh, P("runs"))
  return jax.tree.map(lambda a: jax.device_put(a, spec), tree)


def to_host(tree, n_runs: int):
  """A numpy copy of a runs-sharded tree with the padding dropped, on every process."""
  from jax.experimental import multihost_utils

  from grokjax import multihost

  if jax.process_count() > 1:
    try:
      tree = multihost_utils.process_allgather(tree, tiled=True)
    except jax.errors.JaxRuntimeError as e:
      raise multihost.gather_failed(e) from e
  return jax.tree.map(lambda a: np.asarray(a)[:n_runs], tree)
