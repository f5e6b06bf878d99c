"""The reproduction report: report.md, a self-contained report.html and CSV tables.

`build_report(run_dir)` reads only the run folder — its tidy tables, snapshots.npz,
the surrogate/ folder, config.json and plan.json — analyses it, draws the figures
with `grokjax.figures` and writes run_dir/report/ (report.md, report.html,
figures/, tables/<name>.csv). Runs that diverged (summary.csv's `diverged_at`) are
named in the header and left out of every table, figure and claim.

  document   blocks, Markdown and HTML rendering, table files
  tables     loading the run folder's tables, the registry of measures, snapshots
  claims     the analysis and the paper's claims set against it
  context    what a section reads (`Ctx`), provenance and captions
  overview   header and claims, grokking curves, grok time as survival data, leads,
             correlations
  lenses     causal heads, Fourier, BDM, geometry
  theory     the LLC and the surrogate

>>> # paths = build_report("runs/demo")   # paths["md"], paths["html"], paths["grokking"], ...
"""

from __future__ import annotations

import pathlib
from typing import Callable

from grokjax import divergence
from grokjax import plan as plan_lib
from grokjax.errors import RunFolderError
from grokjax.report import lenses, overview, theory
from grokjax.report.claims import analyse, without_runs
from grokjax.report.context import Ctx, provenance
from grokjax.report.document import Report, fmt
from grokjax.report.tables import MEASURES, load_tables

SECTIONS = (overview.section_header, overview.section_grokking, overview.section_survival,
            lenses.section_causal,
            lenses.section_fourier, lenses.section_bdm, lenses.section_geometry,
            theory.section_llc, theory.section_surrogate, overview.section_leads,
            overview.section_correlations)

__all__ = ["MEASURES", "Report", "SECTIONS", "build_report", "fmt"]


def build_report(run_dir, *, title: str | None = None,
                 write: Callable[[str], None] = print) -> dict[str, pathlib.Path]:
  """Analysis, figures and report of a run folder into run_dir/report/; returns the paths."""
  run_dir = pathlib.Path(run_dir)
  tables = load_tables(run_dir)
  if tables["metrics"] is None:
    raise RunFolderError(f"{run_dir} has no metrics.csv: train the sweep first")
  diverged = divergence.diverged_runs(run_dir)
  tables = without_runs(tables, {r["run"] for r in diverged})
  if not len(tables["metrics"]["run"]):
    raise RunFolderError(f"{divergence.describe(diverged)} in {run_dir}: every run diverged, "
                         "nothing to report")
  out = run_dir / "report"
  ctx = Ctx(run_dir, out / "figures", tables, analyse(tables), provenance(run_dir),
            Report(title or f"grokjax reproduction: {run_dir.name}"), write,
            plan_lib.load(run_dir), diverged)
  for section in SECTIONS:
    section(ctx)
    write(f"report: {section.__name__[8:]} done")
  return ctx.report.write(out)
