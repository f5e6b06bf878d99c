"""Preparing, recognising and locking run folders, so that none is destroyed by accident.

Recognising (`kind`). A folder is
  - "empty" when it holds nothing but the lock file (or does not exist);
  - "training" when DIR/config.json is a JSON object whose "config" is an object that
    `SweepConfig.from_dict` accepts (every key a SweepConfig field) and that names at
    least `ops`, `seeds`, `weight_decays` and `steps` (what experiments.train,
    experiments.phase and experiments.reproduce write first, before any checkpoint);
  - "surrogate" likewise with `SurrogateConfig` and `ops`, `seeds`, `penalties`, `steps`
    (experiments.surrogate);
  - None otherwise: not grokjax's (a user's notes, a thesis, a file, a folder whose
    config.json is missing or unreadable). Such a folder is never cleared.
`--overwrite` clears a folder (`check_replaceable`, then `clear`) only when it is empty
or of the kind the command writes, and keeps the lock file while doing so.

Locking (`lock`, `hold`). Every command that writes a run folder holds an OS lock
(`fcntl.flock`) on DIR/.grokjax.lock for as long as it writes. The kernel drops the
lock when the process ends, however it ends, so there are no stale locks; the lock
file stays behind and records the last holder's pid, start time and command, which a
second writer prints when it is refused. The lock is re-entrant within one process
(the pipeline holds it across its stages and its training sweep takes it again), and
in a job of several processes only the writing process (process 0) takes it; the
others learn whether it succeeded, so that every process fails with the same line.

>>> # with lock("runs/demo"):
>>> #   ...  # another grokjax process writing runs/demo now gets one line and exits
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import itertools
import json
import os
import pathlib
import shutil
import sys

from grokjax.errors import RunFolderError

LOCK = ".grokjax.lock"
_REQUIRED = {"training": ("ops", "seeds", "weight_decays", "steps"),
             "surrogate": ("ops", "seeds", "penalties", "steps")}
SHOWN = 4  # entry names listed in a message

# The locks this process holds: real path -> [file descriptor (None off the writer), depth].
# Process-wide on purpose: a flock belongs to an open file, so a second open of the lock
# file in the same process would refuse the lock it already holds.
_HELD: dict[str, list] = {}
_ACQUIRED = itertools.count()  # names each cross-process exchange of a lock's outcome


def entries(path: str | os.PathLike) -> list[pathlib.Path]:
  """What a folder holds besides the lock file, sorted by name ([] if it does not exist)."""
  path = pathlib.Path(path)
  if not path.is_dir():
    return []
  return sorted((p for p in path.iterdir() if p.name != LOCK), key=lambda p: p.name)


def describe(path: str | os.PathLike) -> str:
  """'3 entries (a/, b.txt, c.csv)': what a folder holds, for a message."""
  items = entries(path)
  names = [p.name + ("/" if p.is_dir() else "") for p in items[:SHOWN]]
  more = ", ..." if len(items) > SHOWN else ""
  return f"{len(items)} entr{'y' if len(items) == 1 else 'ies'} ({', '.join(names)}{more})"


def _config_kind(path: pathlib.Path) -> str | None:
  try:
    record = json.loads((path / "config.json").read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError):
    return None
  config = record.get("config") if isinstance(record, dict) else None
  if not isinstance(config, dict):
    return None
  from grokjax.config import SweepConfig
  from grokjax.errors import GrokjaxError
  from grokjax.surrogate.train import SurrogateConfig

  for kind, cls in (("training", SweepConfig), ("surrogate", SurrogateConfig)):
    if not all(k in config for k in _REQUIRED[kind]):
      continue
    try:
      cls.from_dict(config)
    except (GrokjaxError, TypeError, ValueError):
      continue
    return kind
  return None


def kind(path: str | os.PathLike) -> str | None:
  """'empty', 'training', 'surrogate' or None (not grokjax's): the rule in the module
  docstring."""
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    return None
  if not entries(path):
    return "empty"
  return _config_kind(path)


def check_target(path: str | os.PathLike) -> None:
  """RunFolderError unless `path` is a folder, or can be made one, that we may write."""
  path = pathlib.Path(path)
  if path.exists() and not path.is_dir():
    raise RunFolderError(f"{path} is a file, not a run folder; choose another folder")
  here = path
  while not here.exists() and here != here.parent:
    here = here.parent
  if not here.is_dir():
    raise RunFolderError(f"cannot create {path}: {here} is a file, not a folder")
  if not os.access(here, os.W_OK | os.X_OK):
    what = "write to" if here == path else "create"
    raise RunFolderError(f"cannot {what} {path}: {here} is not writable")


def check_replaceable(path: str | os.PathLike, expected: str) -> None:
  """RunFolderError unless --overwrite may clear `path`: it is empty or of kind `expected`."""
  path = pathlib.Path(path)
  check_target(path)
  found = kind(path)
  if found in ("empty", expected):
    return
  if found is not None:
    raise RunFolderError(f"{path} is a {found} run folder, not a {expected} one; refusing "
                         "to delete it")
  raise RunFolderError(f"{path} holds {describe(path)} and is not a grokjax {expected} run "
                       "folder; refusing to delete it")


def clear(path: str | os.PathLike) -> None:
  """Deletes everything in `path` except the lock file (links themselves, not their targets).

  Call it with the lock held and after `check_replaceable`.
  """
  for item in entries(path):
    if item.is_dir() and not item.is_symlink():
      shutil.rmtree(item)
    else:
      item.unlink()


# ---------------------------------------------------------------- the lock

def _holder(fd: int) -> str:
  try:
    record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    return (f"pid {record['pid']}, started {record['started']}: "
            f"{record['command']}")
  except (OSError, ValueError, KeyError, TypeError):
    return "holder unknown"


def _open_locked(path: pathlib.Path) -> int:
  """Creates `path` if needed and takes its lock; the lock file's descriptor."""
  check_target(path)
  try:
    path.mkdir(parents=True, exist_ok=True)
    fd = os.open(path / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
  except OSError as e:
    raise RunFolderError(f"cannot write to {path}: {e.strerror}") from e
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    holder = _holder(fd)
    os.close(fd)
    raise RunFolderError(f"{path} is in use by another grokjax process ({holder}); wait for "
                         "it to finish, or write to another folder") from None
  started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
  record = {"pid": os.getpid(), "started": started, "command": " ".join(sys.argv)}
  os.ftruncate(fd, 0)
  os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
  return fd


def _acquire(path: str | os.PathLike) -> None:
  import jax

  from grokjax import multihost

  path = pathlib.Path(path)
  key = os.path.realpath(path)
  if key in _HELD:
    _HELD[key][1] += 1
    return
  fd, error = None, ""
  if multihost.is_writer():
    try:
      fd = _open_locked(path)
    except RunFolderError as e:
      error = str(e)
  if jax.process_count() > 1:
    error = multihost.exchange(f"folder-lock/{next(_ACQUIRED)}", error)[0]
    if error and fd is not None:
      os.close(fd)
  if error:
    raise RunFolderError(error)
  _HELD[key] = [fd, 1]


def _release(path: str | os.PathLike) -> None:
  key = os.path.realpath(path)
  held = _HELD[key]
  held[1] -= 1
  if held[1] == 0:
    del _HELD[key]
    if held[0] is not None:
      os.close(held[0])  # closing the last descriptor of the file drops the flock


@contextlib.contextmanager
def lock(path: str | os.PathLike):
  """Holds DIR/.grokjax.lock (creating DIR) while the block runs; RunFolderError in one
  line when another process holds it or DIR cannot be written. Re-entrant in a process.

  Check the folder's contents before taking the lock (that creates the lock file) and
  again with it held.
  """
  _acquire(path)
  try:
    yield
  finally:
    _release(path)


def hold(path: str | os.PathLike) -> None:
  """Takes the lock of `path` until this process exits: for a CLI's whole command."""
  _acquire(path)


def held(path: str | os.PathLike) -> bool:
  """Whether this process holds the lock of `path`."""
  return os.path.realpath(path) in _HELD
