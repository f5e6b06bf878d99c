"""Run-folder files: config.json with provenance, tidy CSV tables, and the folder opened once.

A run folder holds `config.json` (the full SweepConfig, the table of runs, package
versions, the git commit and the devices), tidy CSV tables (`metrics.csv`,
`measures.csv`, `causal.csv`, `llc.csv`: one row per run x step [x ...], with the
run's op/seed/weight_decay/lr/train_frac columns), `checkpoints/` and figures.

`RunFolder.open(path)` reads config.json and the list of saved steps once; every lens
takes that value and asks it for parameters (steps x runs, each checkpoint read
once), tables, and checked step and run choices.

>>> # folder = RunFolder.open("runs/demo")
>>> # params = folder.params(folder.log_spaced(4), runs=[0, 1])  # leaves [4, 2, ...]
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import importlib.metadata
import io
import json
import math
import os
import pathlib
import platform
import secrets
import subprocess
import zipfile
import zlib
from typing import IO, Callable, Iterable, Iterator, Sequence

import numpy as np

from grokjax.config import RunSpec, SweepConfig
from grokjax.errors import CheckpointError, ConfigError, RunFolderError

RUN_COLUMNS = ("run", "op", "seed", "weight_decay", "lr", "train_frac")
# columns that are numbers in every table that has them: a stray string there is an error
NUMERIC_COLUMNS = ("run", "step", "seed", "weight_decay", "lr", "train_frac")
# measures.csv: the text columns that record the options behind each lens's values
OPTIONS_PREFIX = "options/"
# after RUN_COLUMNS, in sweeps whose optimizer has them (config.OPTIMIZER_FIELDS)
OPTIMIZER_COLUMNS = ("grokfast_alpha", "grokfast_lamb", "grokfast_window", "weight_norm")
PACKAGES = ("grokjax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "pybdm",
            "matplotlib", "absl-py")


def package_versions() -> dict[str, str]:
  out = {}
  for name in PACKAGES:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = "not installed"
  return out


def git_commit() -> str:
  """The commit of the grokjax source tree (with '+dirty' for local changes), or 'unknown'."""
  here = pathlib.Path(__file__).resolve().parent
  try:
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                         check=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                           capture_output=True, text=True, check=True, timeout=10).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return "unknown"
  return sha + ("+dirty" if dirty else "")


def run_fields(index: int, spec: RunSpec) -> dict:
  return {"run": index, "op": spec.op, "seed": spec.seed, "weight_decay": spec.weight_decay,
          "lr": spec.lr, "train_frac": spec.train_frac, **spec.optimizer_fields}


def cpu_kind() -> str:
  """The CPU model and its widest vector unit (the two CPU kinds differ there), and cores."""
  model, flags_ = platform.processor() or platform.machine(), set()
  info = pathlib.Path("/proc/cpuinfo")
  if info.is_file():
    for line in info.read_text().splitlines():
      key, _, value = line.partition(":")
      if key.strip() == "model name":
        model = value.strip()
      elif key.strip() == "flags":
        flags_ = set(value.split())
      if model and flags_:
        break
  vector = "AVX-512" if "avx512f" in flags_ else "AVX2" if "avx2" in flags_ else "no AVX2"
  return f"{model} ({vector}), {os.cpu_count()} cores"


def provenance(devices: Sequence[str]) -> dict:
  """What every config.json and benchmark result records: versions, commit, host CPU,
  devices, time."""
  return {
      "versions": package_versions(),
      "git_commit": git_commit(),
      "machine": cpu_kind(),
      "devices": list(devices),
      "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
  }


# ---------------------------------------------------------------- whole-file writes

@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kw) -> Iterator[IO]:
  """A file object on a new file beside `path` that replaces `path` when the block ends.

  Readers see the old file or the new one, never a half-written one: a process killed
  mid-write leaves a hidden `.<name>.*.tmp` file and the old `path` untouched. The data
  is flushed to disk before the rename. On an exception the temporary file is removed.
  `mode` is 'w' (text, newline="" unless given) or 'wb'.
  """
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
  # os.open with 0o666 keeps the umask's permissions (mkstemp would make the file 0600)
  fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
  if "b" not in mode:
    open_kw.setdefault("newline", "")
  try:
    with os.fdopen(fd, mode, **open_kw) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    tmp.unlink(missing_ok=True)
    raise


def write_json(path: str | os.PathLike, record) -> None:
  """`record` as indented JSON, written atomically (see atomic_write)."""
  with atomic_write(path) as f:
    f.write(json.dumps(record, indent=2) + "\n")


def read_json(path: str | os.PathLike):
  """A JSON file's value; RunFolderError naming the file where it is not JSON text."""
  path = pathlib.Path(path)
  try:
    return json.loads(path.read_bytes().decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise RunFolderError(f"cannot read {path}: it is not JSON text ({e}); the file is "
                         "corrupted or was edited") from e


def read_npz(path: str | os.PathLike, header: Sequence[str]) -> dict[str, np.ndarray]:
  """Every array of an .npz file; RunFolderError where it is not a whole npz (cut off,
  edited) or lacks one of the `header` arrays."""
  path = pathlib.Path(path)
  try:
    with np.load(path) as z:
      arrays = {k: z[k] for k in z.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise RunFolderError(f"cannot read {path}: {type(e).__name__}: {e}; the file is "
                         "truncated or corrupted") from e
  missing = [k for k in header if k not in arrays]
  if missing:
    raise RunFolderError(f"cannot read {path}: it lacks the arrays {missing}; the file is "
                         "truncated or corrupted")
  return arrays


def write_config(run_dir: str | os.PathLike, cfg: SweepConfig, devices: Sequence[str]) -> None:
  record = {"config": cfg.to_dict(),
            "runs": [run_fields(i, s) for i, s in enumerate(cfg.runs)],
            **provenance(devices)}
  write_json(pathlib.Path(run_dir) / "config.json", record)


def load_config(run_dir: str | os.PathLike) -> SweepConfig:
  """The SweepConfig a run folder was trained with, type-checked and validated.

  RunFolderError (one line naming the file and the field) where config.json is not
  JSON, lacks the config, or holds a field of the wrong type or an invalid value.
  """
  path = pathlib.Path(run_dir) / "config.json"
  if not path.is_file():
    raise RunFolderError(f"{run_dir} is not a run folder: {path} does not exist")
  record = read_json(path)
  if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
    raise RunFolderError(f"cannot read {path}: it has no \"config\" object; the file is "
                         "corrupted or was edited")
  try:
    cfg = SweepConfig.from_dict(record["config"])
    cfg.validate()
  except ConfigError as e:
    raise RunFolderError(f"cannot read {path}: {e}") from e
  return cfg


def check_same_config(run_dir: str | os.PathLike, cfg: SweepConfig, *, hint: str) -> None:
  """Raises RunFolderError naming each field where run_dir's config.json differs from cfg."""
  saved, asked = load_config(run_dir).to_dict(), cfg.to_dict()
  diff = sorted(k for k, v in asked.items() if saved.get(k) != v)
  if diff:
    detail = "; ".join(f"{k}: folder has {saved.get(k)!r}, asked {asked[k]!r}" for k in diff)
    raise RunFolderError(f"{run_dir} holds a different sweep (differs in {detail}); {hint}")


def find_run(cfg: SweepConfig, *, op: str | None = None, seed: int | None = None,
             weight_decay: float | None = None, lr: float | None = None,
             train_frac: float | None = None) -> int:
  """Index of the one run matching the given fields (the others may be left out)."""
  want = {"op": op, "seed": seed, "weight_decay": weight_decay, "lr": lr,
          "train_frac": train_frac}
  want = {k: v for k, v in want.items() if v is not None}
  hits = [i for i, s in enumerate(cfg.runs)
          if all(getattr(s, k) == v for k, v in want.items())]
  if len(hits) != 1:
    have = ", ".join(s.label for s in cfg.runs)
    what = "no run" if not hits else f"{len(hits)} runs"
    raise RunFolderError(f"{what} match {want}; the folder has: {have}")
  return hits[0]


def filter_runs(cfg: SweepConfig, *, ops=None, weight_decays=None, seeds=None,
                runs: Sequence[int] | None = None) -> list[int]:
  """Indices of the runs (optionally among `runs`) whose op, weight decay and seed are
  among those given (None keeps all); raises RunFolderError naming the runs when none is,
  ConfigError for a weight decay or seed that is not a number."""
  wds = _numbers(weight_decays, float, "weight_decays")
  seeds = _numbers(seeds, int, "seeds")
  pool = check_runs(cfg, runs)
  keep = [i for i in pool
          if (ops is None or cfg.runs[i].op in ops)
          and (wds is None or cfg.runs[i].weight_decay in wds)
          and (seeds is None or cfg.runs[i].seed in seeds)]
  if not keep:
    raise RunFolderError("no run matches the --runs/--ops/--weight_decays/--seeds filters; "
                         f"the folder has: {', '.join(s.label for s in cfg.runs)}")
  return keep


def _numbers(values, kind, flag: str) -> list | None:
  try:
    return None if values is None else [kind(v) for v in values]
  except ValueError as e:
    raise ConfigError(f"--{flag} takes comma-separated {kind.__name__}s, got "
                      f"{','.join(map(str, values))!r}") from e


def check_runs(cfg: SweepConfig, runs: Sequence[int] | None) -> list[int]:
  """The run indices asked for (None: every run), each checked to be in the sweep."""
  if runs is None:
    return list(range(len(cfg.runs)))
  bad = [int(r) for r in runs if not 0 <= r < len(cfg.runs)]
  if bad or not len(runs):
    raise RunFolderError(f"run index(es) {bad or list(runs)} not in the folder: it has runs "
                         f"0..{len(cfg.runs) - 1} ({', '.join(s.label for s in cfg.runs)})")
  return [int(r) for r in runs]


# ---------------------------------------------------------------- choosing saved steps

def choose_steps(saved: Sequence[int], *, steps: Sequence[int] | None = None,
                 every: int | None = None, keep_last: bool = False, where="the run folder"
                 ) -> list[int]:
  """`steps` (each must be saved), the saved multiples of `every` (and the last with
  `keep_last`), or every saved step; sorted, without repeats.

  >>> choose_steps([0, 40, 80, 120], every=50, keep_last=True)
  [0, 120]
  """
  saved = sorted(saved)
  if not saved:
    raise CheckpointError(f"no checkpoints in {where}: checkpoints/params holds no step")
  if steps is not None and every is not None:
    raise ConfigError("give --steps or --every, not both")
  if steps is not None:
    if not len(steps):
      raise ConfigError("no steps given")
    missing = sorted(set(steps) - set(saved))
    if missing:
      raise CheckpointError(f"step(s) {missing} not saved in {where}; saved steps: {saved}")
    return sorted(set(steps))
  if every is not None:
    if every < 1:
      raise ConfigError(f"--every must be >= 1, got {every}")
    chosen = {s for s in saved if s % every == 0} | ({saved[-1]} if keep_last else set())
    if not chosen:
      raise CheckpointError(f"no saved step of {where} is a multiple of {every}; "
                            f"saved steps: {saved}")
    return sorted(chosen)
  return saved


def log_spaced(saved: Sequence[int], n: int, first: int = 1) -> list[int]:
  """Up to n saved steps nearest (on a log scale) to geomspace(lo, last, n).

  lo is the saved positive step nearest to `first`, lowered to last / 10 for short runs
  (the paper's first checkpoint is 100; first=1 starts at the first positive step).

  >>> log_spaced([0, 1, 2, 4, 8, 16, 100, 200, 1000, 5000, 10000], 4)
  [1, 16, 1000, 10000]
  """
  pos = [s for s in sorted(saved) if s > 0]
  if not pos or n < 1:
    return list(saved)[-1:]
  lo = min(pos, key=lambda s: abs(math.log(s / min(first, max(pos[-1] / 10, 1)))))
  targets = np.geomspace(lo, pos[-1], n)
  return sorted({min(pos, key=lambda s: abs(math.log(s / t))) for t in targets})


# ---------------------------------------------------------------- the folder opened once

@dataclasses.dataclass(frozen=True)
class RunFolder:
  """A run folder opened once: its SweepConfig, run table, saved steps and paths.

  A view of the folder when it was opened: open it again after training adds steps.
  Parameters, metrics and lens tables are read on request.
  """

  path: pathlib.Path
  cfg: SweepConfig
  run_table: tuple[dict, ...]  # run_fields of every run, as config.json lists them
  steps: tuple[int, ...]  # the saved parameter checkpoints, ascending

  @classmethod
  def open(cls, path: str | os.PathLike) -> RunFolder:
    from grokjax import checkpoint  # orbax, kept out of runio's import

    path = pathlib.Path(path)
    cfg = load_config(path)
    table = tuple(run_fields(i, s) for i, s in enumerate(cfg.runs))
    return cls(path, cfg, table, tuple(checkpoint.list_steps(path)))

  @property
  def runs(self) -> tuple[RunSpec, ...]:
    return tuple(self.cfg.runs)

  def file(self, name: str) -> pathlib.Path:
    return self.path / name

  def has_table(self, name: str) -> bool:
    return (self.path / f"{name}.csv").is_file()

  def table(self, name: str) -> dict[str, np.ndarray]:
    """DIR/<name>.csv as columns (RunFolderError where it does not exist)."""
    return read_csv(self.path / f"{name}.csv")

  def metrics(self) -> dict[str, np.ndarray]:
    return self.table("metrics")

  def check_runs(self, runs: Sequence[int] | None) -> list[int]:
    return check_runs(self.cfg, runs)

  def choose_steps(self, *, steps: Sequence[int] | None = None, every: int | None = None,
                   keep_last: bool = False) -> list[int]:
    return choose_steps(self.steps, steps=steps, every=every, keep_last=keep_last,
                        where=str(self.path))

  def log_spaced(self, n: int, first: int = 1) -> list[int]:
    return log_spaced(self.steps, n, first)

  def params(self, steps: Sequence[int], runs: Sequence[int] | None = None):
    """Parameters at `steps` x `runs` (None: all), leaves [len(steps), len(runs), ...]."""
    from grokjax import checkpoint

    self.choose_steps(steps=steps)  # each must be saved; the order asked is kept
    return checkpoint.load_runs(self.path, self.cfg, list(steps), self.check_runs(runs))


def _cell(v) -> str:
  if isinstance(v, (float, np.floating)):
    return repr(float(v)) if math.isfinite(v) else str(float(v))
  if isinstance(v, np.integer):
    return str(int(v))
  return str(v)


def write_csv(path: str | os.PathLike, rows: Iterable[dict], append: bool = False) -> None:
  """Writes (or appends) dict rows; the header is the first row's keys.

  A whole table is written atomically (see atomic_write). Appending (metrics.csv at
  each evaluation stop) adds whole lines to an existing file, whose header it reuses;
  a process killed mid-append can leave an incomplete last line, which read_csv
  reports (or drops, with drop_partial_last) and `--resume` removes.
  """
  rows = list(rows)
  if not rows:
    return
  path = pathlib.Path(path)
  if append and path.is_file() and path.stat().st_size > 0:
    keys = _appendable_header(path)
    with open(path, "a", newline="") as f:
      _write_rows(f, None, keys, rows)
    return
  with atomic_write(path) as f:
    _write_rows(f, list(rows[0]), list(rows[0]), rows)


def _write_rows(f, header: list[str] | None, keys: list[str], rows: list[dict]) -> None:
  writer = csv.writer(f)
  if header is not None:
    writer.writerow(header)
  for row in rows:
    writer.writerow([_cell(row[k]) for k in keys])


def _appendable_header(path: pathlib.Path) -> list[str]:
  """The header of a table that ends with a whole line (appending would glue a row to
  a cut-off one otherwise)."""
  with open(path, "rb") as f:
    f.seek(-1, os.SEEK_END)
    if f.read(1) not in (b"\n", b"\r"):
      raise RunFolderError(f"cannot append to {path}: its last line is incomplete (a write "
                           "was cut off); resume the sweep with --resume to repair it")
  with open(path, newline="") as g:
    return next(csv.reader(g))


def _is_number(v: str) -> bool:
  try:
    float(v)
  except ValueError:
    return False
  return True


def measures_numeric(name: str) -> bool:
  """measures.csv: every column but op and the option columns holds numbers."""
  return name != "op" and not name.startswith(OPTIONS_PREFIX)


def _parse(path: pathlib.Path, name: str, values: list[str], lines: list[int],
           strict: bool) -> np.ndarray:
  """int64, else float64, else strings; in a `strict` column (one of numbers) any cell
  that is not a number raises. Other columns may mix numbers and text (a report's
  key/value table)."""
  try:
    return np.array([int(v) for v in values], dtype=np.int64)
  except ValueError:
    pass
  try:
    return np.array([float(v) for v in values], dtype=np.float64)
  except ValueError:
    pass
  bad = [i for i, v in enumerate(values) if not _is_number(v)]
  if strict and bad:
    i = bad[0]
    raise RunFolderError(f"{path} line {lines[i]}: column {name!r} holds {values[i]!r} where "
                         "a number belongs; the file was edited or is corrupted")
  return np.array(values, dtype=object)


def read_csv(path: str | os.PathLike, *, drop_partial_last: bool = False,
             numeric: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
  """A tidy CSV as columns: int64, float64 or object (strings) arrays.

  Raises RunFolderError naming the file and line where a row's length differs from the
  header's, where the last line is incomplete (no line end: a write was cut off), where
  a column of numbers holds a stray string, or where the file is not text. The columns
  of numbers are NUMERIC_COLUMNS and those for which `numeric(name)` is true.
  `drop_partial_last` drops an incomplete last line instead (metrics.csv is appended
  during training, so a killed sweep can leave one).
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise RunFolderError(f"{path} does not exist")
  try:
    text = path.read_bytes().decode("utf-8")
    records = list(_records(text))
  except (UnicodeDecodeError, csv.Error) as e:
    raise RunFolderError(f"cannot read {path}: it is not a CSV table ({e}); the file is "
                         "corrupted or was edited") from e
  if records and not text.endswith(("\n", "\r")):
    if not drop_partial_last:
      raise RunFolderError(f"{path} line {records[-1][1]} is incomplete (no line end): the "
                           "file is truncated (a write was cut off) or was edited")
    records.pop()
  if not records:
    return {}
  header, rows = records[0][0], records[1:]
  for row, line in rows:
    if len(row) != len(header):
      raise RunFolderError(f"{path} line {line} has {len(row)} fields, the header has "
                           f"{len(header)}; the file is truncated or was edited")
  lines = [line for _, line in rows]
  cols = list(zip(*[r for r, _ in rows])) if rows else [() for _ in header]
  return {k: _parse(path, k, list(c), lines,
                    k in NUMERIC_COLUMNS or (numeric is not None and numeric(k)))
          for k, c in zip(header, cols)}


def _records(text: str) -> Iterator[tuple[list[str], int]]:
  """(row, line number) of each non-blank CSV record in `text`."""
  reader = csv.reader(io.StringIO(text, newline=""))
  for row in reader:
    if row:
      yield row, reader.line_num
