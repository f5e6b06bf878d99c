"""What every section reads: the run folder's tables, the analysis, provenance, the plan.

Captions say what was measured, on which runs, with which settings and at which
commit (`provenance` reads them from the run folder's config.json).

>>> caption("Accuracy.", runs="ops add", settings="every 50 steps", commit="abc")
'Accuracy. Runs: ops add. Settings: every 50 steps. Commit `abc`.'
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Callable, Sequence

from grokjax.plan import Plan
from grokjax.report import tables as tables_lib
from grokjax.report.claims import Results
from grokjax.report.document import Report


def provenance(run_dir) -> dict:
  """commit, created, devices, versions and the sweep config from a run folder's config.json."""
  record = json.loads((pathlib.Path(run_dir) / "config.json").read_text())
  return {"commit": record.get("git_commit", "unknown"), "created": record.get("created", "?"),
          "devices": record.get("devices", []), "versions": record.get("versions", {}),
          "config": record.get("config", {})}


def runs_phrase(cfg: dict) -> str:
  """'x op y mod p for ops ..., weight decays ..., seeds ...' for captions."""
  return (f"ops {', '.join(cfg['ops'])} (mod p = {cfg['p']}), weight decays "
          f"{', '.join(f'{w:g}' for w in cfg['weight_decays'])}, seeds "
          f"{', '.join(str(s) for s in cfg['seeds'])}, model '{cfg['model']}', "
          f"{cfg['steps']} steps, batch {cfg['batch_size']}, "
          f"lr {', '.join(f'{l:g}' for l in cfg['lrs'])}, "
          f"train fraction {', '.join(f'{f:g}' for f in cfg['train_fracs'])}")


def caption(what: str, *, runs: str, settings: str, commit: str) -> str:
  return f"{what} Runs: {runs}. Settings: {settings}. Commit `{commit}`."


@dataclasses.dataclass
class Ctx:
  """A section's inputs (tables, analysis, provenance, plan) and its outputs (report, figures)."""

  run_dir: pathlib.Path
  fig_dir: pathlib.Path
  tables: dict
  res: Results
  prov: dict
  report: Report
  write: Callable[[str], None]
  plan: Plan | None  # None: the folder has no plan.json
  diverged: list[dict] = dataclasses.field(default_factory=list)  # divergence.diverged_runs

  @property
  def cfg(self) -> dict:
    return self.prov["config"]

  def setting(self, name: str, missing="?"):
    """A field of the plan, or `missing` where the folder recorded no plan."""
    return missing if self.plan is None else getattr(self.plan, name)

  def cap(self, what: str, settings: str, runs: str | None = None) -> str:
    return caption(what, runs=runs or runs_phrase(self.cfg), settings=settings,
                   commit=self.prov["commit"])

  def fig(self, paths, caption_text: str) -> None:
    png = [p for p in paths if str(p).endswith(".png")][0]
    self.report.figure(png, caption_text)

  def panels(self, columns: Sequence[str]) -> list[tuple[dict, str, str]]:
    """(table, column, label) of the measure columns the folder has, in the given order."""
    mt = tables_lib.measure_tables(self.tables)
    labels = tables_lib.labels()
    return [(mt[c], c, labels.get(c, c)) for c in columns if c in mt]

  def snapshots(self, kind: str) -> list[dict]:
    return tables_lib.snapshot_list(self.run_dir, self.tables["metrics"], kind)
