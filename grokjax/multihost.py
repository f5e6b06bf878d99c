"""Several processes training one sweep: joining, agreeing, and failing in one line.

On a TPU pod slice or several GPU hosts every host runs the same command. After
`initialize`, `jax.devices()` lists every process's devices and grokjax.sharding splits
the runs axis over all of them; each process computes its own runs and the
evaluations are gathered to every process. Only process 0 writes files (`is_writer`);
orbax checkpoints are saved and restored by all processes together (they must see the
run folder at the same path: a shared or cloud-mounted file system).

Failure: JAX ends a process whose peer died with a fatal abort and a page of logs,
and waits `initialization_timeout` for late processes. Here every process exits with
one line (status 2) instead when
  - not every process joined within `timeout_s` (a timer);
  - another process stopped beating for `heartbeat_s` (a watchdog thread: each
    process increments its counter in the coordinator's key-value store every second
    and watches the others'; JAX's own heartbeat is set to twice that, as a backstop);
  - a cross-process exchange failed (`sync`, `exchange`, a gather in grokjax.sharding
    raise DistributedError; the CLIs print it and exit through `fail_now`).
When process 0 dies, the coordinator goes with it and JAX ends the others at once
with its own fatal message ("... another task died").

>>> # on host k of 2:  initialize("10.0.0.1:8476", 2, k, timeout_s=300, heartbeat_s=100)
"""

from __future__ import annotations

import json
import os
import sys
import threading

import jax

from grokjax.errors import DistributedError


def fail_now(message: str, code: int = 2) -> None:
  """Prints `error: message` and ends this process with status `code` at once.

  A plain exit would run JAX's shutdown, which waits for every process at a barrier
  and aborts with a page of logs when one of them is gone.
  """
  sys.stdout.flush()
  print(f"error: {message}", file=sys.stderr, flush=True)
  os._exit(code)


def initialize(coordinator: str, num_processes: int, process_id: int, *,
               timeout_s: int = 300, heartbeat_s: int = 100) -> None:
  """Joins the job: `jax.distributed.initialize` plus the first look at every device.

  Exits with one line (status 2) when not all `num_processes` have joined within
  `timeout_s` seconds; JAX's own deadline is set later, as a backstop.
  """
  where = f"process {process_id} of {num_processes}"
  timer = threading.Timer(timeout_s, fail_now, args=(
      f"{where}: not every process joined the coordinator {coordinator} within {timeout_s} s; "
      f"start the same command on all {num_processes} processes (or raise --dist_timeout)",))
  timer.daemon = True
  timer.start()
  jax.distributed.initialize(coordinator, num_processes, process_id,
                             initialization_timeout=timeout_s + 60,
                             heartbeat_timeout_seconds=2 * heartbeat_s)
  jax.devices()  # the backend exchanges every process's devices here
  timer.cancel()
  threading.Thread(target=_watch, args=(_client(), process_id, num_processes, heartbeat_s),
                   daemon=True, name="grokjax-watchdog").start()


def _watch(client, process_id: int, num_processes: int, heartbeat_s: int) -> None:
  """Beats every second and exits this process when a peer has not beaten for heartbeat_s."""
  import time

  seen = {i: ("", time.monotonic()) for i in range(num_processes) if i != process_id}
  while True:
    try:
      client.key_value_increment(f"grokjax/alive/{process_id}", 1)
      for i, (last, since) in seen.items():
        try:
          beat = client.key_value_try_get(f"grokjax/alive/{i}")
        except jax.errors.JaxRuntimeError:  # NOT_FOUND until process i beats once
          beat = last
        now = time.monotonic()
        if beat != last:
          seen[i] = (beat, now)
        elif now - since > heartbeat_s:
          fail_now(f"process {i} of {num_processes} stopped answering for {heartbeat_s} s (it "
                   f"died or hangs); process {process_id} stops too, resume with --resume")
    except jax.errors.JaxRuntimeError as e:
      fail_now(f"process {process_id} of {num_processes} lost the coordinator (process 0 "
               f"probably died): {_first_line(e)}")
    time.sleep(1.0)


def joined() -> bool:
  """Whether this process has joined a job of several processes (`initialize`)."""
  return _client() is not None


def is_writer() -> bool:
  """Whether this process writes the run folder's files (process 0 only)."""
  return jax.process_index() == 0


def _client():
  from jax._src import distributed

  return distributed.global_state.client


def sync(name: str, timeout_s: int = 600) -> None:
  """Waits until every process has reached `name` (each name once per job)."""
  if jax.process_count() == 1:
    return
  try:
    _client().wait_at_barrier(f"grokjax/{name}", timeout_s * 1000)
  except jax.errors.JaxRuntimeError as e:
    raise DistributedError(f"process {jax.process_index()} of {jax.process_count()}: not every "
                           f"process reached {name!r}: {_first_line(e)}") from e


def exchange(name: str, text: str, timeout_s: int = 600) -> list[str]:
  """Every process's `text` for `name`, indexed by process (each name once per job)."""
  if jax.process_count() == 1:
    return [text]
  client = _client()
  try:
    client.key_value_set(f"grokjax/{name}/{jax.process_index()}", text)
    texts = [client.blocking_key_value_get(f"grokjax/{name}/{i}", timeout_s * 1000)
             for i in range(jax.process_count())]
  except jax.errors.JaxRuntimeError as e:
    raise DistributedError(f"process {jax.process_index()} of {jax.process_count()}: "
                           f"exchanging {name!r} failed: {_first_line(e)}") from e
  sync(f"{name}/read", timeout_s)  # nobody leaves (and takes the coordinator) before all read
  return texts


def check_same(name: str, record: dict) -> None:
  """Raises DistributedError unless every process passed an equal `record`.

  >>> # check_same("config", {"steps": 20, "out": "runs/x"})  # the same on every process
  """
  texts = exchange(name, json.dumps(record, sort_keys=True))
  base = json.loads(texts[0])
  for i, text in enumerate(texts[1:], start=1):
    other = json.loads(text)
    diff = sorted(k for k in base.keys() | other.keys() if base.get(k) != other.get(k))
    if diff:
      detail = "; ".join(f"{k}: {other.get(k)!r} vs {base.get(k)!r}" for k in diff)
      raise DistributedError(f"process {i} was started with a different {name} than process 0 "
                             f"({detail}); start the same command on every process")


def gather_failed(e: Exception) -> DistributedError:
  """The one-line error for a cross-process exchange that failed (a peer died)."""
  return DistributedError(f"process {jax.process_index()} of {jax.process_count()}: an exchange "
                          f"across processes failed, another process probably died: "
                          f"{_first_line(e)}")


def _first_line(e: Exception) -> str:
  text = str(e).strip()
  return text.splitlines()[0] if text else type(e).__name__
