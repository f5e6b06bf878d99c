"""Train a 2-D grid of per-run fields x seeds as one sweep and classify every cell's phase.

  python -m experiments.phase --out=runs/phase
  python -m experiments.phase --x=grokfast_lamb --y=weight_decay --x_values=0,1,2,4 \
      --y_values=0,0.3,1,3 --seeds=0,1 --preset=tiny --out=runs/phase_grokfast

Any other sweep flag of experiments.train (e.g. --steps, --lr, --grokfast_filter) sets
the base config. Writes the run folder (metrics.csv, summary.csv, checkpoints) plus
phase.csv (one row per cell x seed), phase_cells.csv (one row per cell, over seeds) and
the phase diagrams phase.png / phase.pdf (grokjax.figures.phase);
phases and thresholds are defined in grokjax.phase.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pathlib  # noqa: E402
import time  # noqa: E402

from absl import app, flags  # noqa: E402

from grokjax import folder, phase, runio, sweep  # noqa: E402
from grokjax.figures import phase as phase_figures  # noqa: E402
from grokjax.cli import check_positive, parse_ints, run_main, sweep_config_from_flags  # noqa: E402
from grokjax.errors import ConfigError  # noqa: E402

_X = flags.DEFINE_string("x", "weight_decay", f"grid x field: {', '.join(phase.GRID_FIELDS)}")
_Y = flags.DEFINE_string("y", "train_frac", "grid y field (same choices)")
_XV = flags.DEFINE_list("x_values", ["0", "0.1", "0.3", "0.5", "1", "2", "3", "5"], "x values")
_YV = flags.DEFINE_list("y_values", ["0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"],
                        "y values")
_SEEDS = flags.DEFINE_list("seeds", ["0"], "seeds of every cell")
_PRESET = flags.DEFINE_string("preset", "tiny", "base config: paper | demo | cpu-quick | tiny")
_DELAY = flags.DEFINE_float("delay_factor", phase.DELAY_FACTOR,
                            "grokking: test step >= this x train step")
_BUDGET = flags.DEFINE_float("memory_budget_gb", phase.DEFAULT_BUDGET_BYTES / 2**30,
                             "refuse grids estimated above this many GiB")
_OUT = flags.DEFINE_string("out", None, "run folder")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "delete --out first")
for _name in ("ops", "lrs", "weight_decays", "train_fracs", "grokfast_alphas", "grokfast_lambs",
              "grokfast_windows", "weight_norms"):
  flags.DEFINE_list(_name, None, f"base value of {_name} (one value unless it is a grid axis)")
for _name, _kind in (("p", flags.DEFINE_integer), ("steps", flags.DEFINE_integer),
                     ("batch_size", flags.DEFINE_integer), ("eval_every", flags.DEFINE_integer),
                     ("ckpt_every", flags.DEFINE_integer), ("lr", flags.DEFINE_float),
                     ("train_frac", flags.DEFINE_float), ("model", flags.DEFINE_string),
                     ("grokfast_filter", flags.DEFINE_string)):
  _kind(_name, None, f"base {_name}")


def parse_values(values: list[str], field: str, flag: str) -> tuple:
  kind = int if field == "grokfast_window" else float
  try:
    return tuple(kind(v) for v in values)
  except ValueError as e:
    raise ConfigError(f"--{flag}: {e}") from e


def main(argv):
  del argv
  check_positive(delay_factor=_DELAY.value, memory_budget_gb=_BUDGET.value)
  if _OUT.value is None:
    raise ConfigError("--out is required (the run folder to write)")
  base = sweep_config_from_flags(flags.FLAGS, _PRESET.value)
  grid = phase.GridSpec(_X.value, _Y.value, parse_values(_XV.value, _X.value, "x_values"),
                        parse_values(_YV.value, _Y.value, "y_values"),
                        tuple(parse_ints(",".join(_SEEDS.value), "seeds")))
  cfg = phase.grid_config(base, grid, int(_BUDGET.value * 2**30))
  out = pathlib.Path(_OUT.value)
  sweep.check_folder(cfg, out, resume=False, overwrite=_OVERWRITE.value,  # before the lock
                    resumable=False)
  folder.hold(out)  # until this command ends, phase.csv and the diagrams included
  t0 = time.time()
  summary = sweep.train_sweep(cfg, _OUT.value, overwrite=_OVERWRITE.value)
  rows = phase.cell_rows(cfg, grid, summary, _DELAY.value)
  cells = phase.aggregate(rows, grid.x, grid.y)
  runio.write_csv(out / "phase.csv", rows)
  runio.write_csv(out / "phase_cells.csv", cells)
  phase_figures.diagrams(runio.read_csv(out / "phase_cells.csv"), grid.x, grid.y, out / "phase",
                         title=f"{len(cells)} cells x {len(grid.seeds)} seed(s), "
                               f"{cfg.steps} steps, ops {', '.join(cfg.ops)}")
  counts = {p: sum(c["phase"] == p for c in cells) for p in phase.PHASES}
  print(f"phase: {len(cells)} cells x {len(grid.seeds)} seed(s) in {time.time() - t0:.0f} s; "
        + ", ".join(f"{p} {n}" for p, n in counts.items())
        + f" -> {out}/phase_cells.csv, {out}/phase.png")


if __name__ == "__main__":
  app.run(run_main(main))
