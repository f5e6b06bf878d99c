"""The lens plan: how much of each lens the pipeline runs for a preset.

The training grid is the preset's SweepConfig (grokjax.config.PRESETS); the plan says
at how many checkpoints, with how many examples, chains and draws, each lens reads it.
The pipeline writes the plan it used to `plan.json` in the run folder, and the report
reads it back from there.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

from grokjax import runio
from grokjax.errors import RunFolderError

PLAN_FILE = "plan.json"
# fields older plans had and no lens reads any more; from_dict drops them. `workers`:
# the BDM process pool, retired when the BDM lens moved onto the device (measures.bdm)
RETIRED = ("workers",)
LLC_STEPS = ("log", "phases")  # how the LLC stage chooses its checkpoints (Plan.llc_steps)


@dataclasses.dataclass
class Plan:
  """How much of each lens a preset runs (the training grid is the preset's SweepConfig)."""

  measure_lenses: tuple[str, ...] = ("spectral", "fourier", "geometry")
  measure_every: int | None = None  # cheap lenses: every saved step (None) or multiples of K
  bdm_points: int | None = None  # BDM at this many log-spaced saved steps (None: as above)
  gc_method: str = "exact"
  n_examples: int = 256  # geometry lens examples
  causal_points: int = 4  # checkpoints for the Figure-2 grid
  causal_pairs: int = 256
  causal_random: int = 5
  causal_examples: int = 1024
  # the LLC's checkpoints: "log" (llc_points log-spaced steps, the same for every run) or
  # "phases" (each run's init, memorised, onset, middle, end and late checkpoints:
  # grokjax.analysis.phase_steps). Old plan.json files have no such field and measured "log"
  llc_steps: str = "log"
  llc_points: int = 8  # checkpoints for the LLC trajectory ("log")
  llc_sampler: str = "sgld"
  # a number fixes ε for every checkpoint; None: each checkpoint's ε is the largest of
  # `llc_step_grid` whose pilot chains accept (grokjax.slt.autostep; None grid: its
  # DEFAULT_GRID). The presets keep 4e-6: on the paper model no ε is both accepted and
  # stationary within their draws, and the pilots add 40-160 % (BUILD_NOTES, SLT)
  llc_step_size: float | None = 4e-6
  llc_step_grid: tuple[float, ...] | None = None
  llc_localization: float = 1e4
  llc_chains: int = 4
  llc_draws: int = 200
  llc_burnin: int = 100
  llc_batch: int = 512
  llc_all_seeds: bool = True  # False: the LLC of the first seed's runs only (cost)
  invariance_grid: int = 5  # grid points per axis (the paper: 30)
  alpha_range: tuple[float, float] = (0.1, 10.0)  # α from lo to hi (log grid)
  beta_range: tuple[float, float] = (0.1, 10.0)  # β from lo to hi (log grid)
  invariance_samplers: tuple[str, ...] = ("sgld", "rmsprop_sgld", "scale_invariant", "riemannian")
  invariance_draws: int = 100
  invariance_chains: int = 2
  surrogate: dict | None = dataclasses.field(default_factory=dict)  # SurrogateConfig overrides
  snapshot_points: int = 4
  snapshot_matrix: str = "tok_embed"
  hidden_points: int = 4  # checkpoints of the embedding / hidden-state maps
  hidden_examples: int | None = None  # PCA on this many examples (None: all p(p-1))
  hidden_tsne_examples: int = 1000  # t-SNE on a seeded subset of this many (0: no t-SNE)
  hidden_tsne_sites: str = "all"  # t-SNE of every cloud, or "ends": embedding and last block
  hidden_perplexity: float = 30.0
  seed: int = 0


# with the progress lens (Nanda et al.'s measures): on the tiny preset (CPU) it adds ~3 ms
# a checkpoint to the 16-43 ms of the other three, and ~0.5 s to their ~35 s compile
WITH_PROGRESS = ("spectral", "fourier", "geometry", "progress")

PLANS: dict[str, Plan] = {
    # every saved step: the paper sweep saves log-spaced and triggered steps (at most ~180),
    # few of them multiples of a round number. The rescaling grid is 5 x 5 (odd: it holds
    # alpha = beta = 1), not the authors' 30 x 30: its cost does not shrink with the sweep, and
    # 900 points x 4 samplers would take ~11 h of one x - y run's ~1 h of CPU training
    # (BUILD_NOTES.md, "The paper preset at full length")
    # The LLC at each run's phase steps, which the accuracy trigger saves densely.
    "paper": Plan(measure_lenses=WITH_PROGRESS, llc_steps="phases", invariance_grid=5),
    # demo and cpu-quick: lean lens plans, since training takes most of the time budget;
    # the LLC at every run's phase steps (<= 6 a run) with 2 chains x (100 + 50 burn-in)
    # draws: 4 runs x 6 x 300 chain-draws is twice the former 2 runs x 4 steps x 450;
    # t-SNE (~9 s of a core per 1,000 points) maps 500 examples, embedding and last block;
    # their rescaling grids stay where the rescaling (nearly) preserves the function (on the
    # demo, α < 1 and β = 0.1 or 10 changed the initial loss by 0.6-4.7 nats)
    "cpu-quick": Plan(measure_lenses=WITH_PROGRESS, gc_method="hutchinson", n_examples=128,
                      causal_pairs=128,
                      causal_random=3, causal_examples=512, llc_steps="phases",
                      llc_chains=2, llc_draws=100, llc_burnin=50, llc_batch=128,
                      invariance_grid=3, invariance_samplers=("sgld", "scale_invariant"),
                      invariance_draws=40, invariance_chains=1, alpha_range=(1.0, 10.0),
                      beta_range=(0.5, 2.0), surrogate=dict(seeds=(0,)),
                      hidden_tsne_examples=500, hidden_tsne_sites="ends"),
    "demo": Plan(measure_lenses=WITH_PROGRESS, gc_method="hutchinson", n_examples=128,
                 causal_pairs=128,
                 causal_random=3, causal_examples=512, llc_steps="phases", llc_chains=2,
                 llc_draws=100, llc_burnin=50, llc_batch=128, invariance_grid=3,
                 invariance_samplers=("sgld", "scale_invariant"), invariance_draws=40,
                 invariance_chains=1, alpha_range=(1.0, 10.0), beta_range=(0.5, 2.0),
                 surrogate=dict(ops=("sub",), p=47, penalties=(0.0, 0.3, 1.0), seeds=(0,)),
                 hidden_tsne_examples=500, hidden_tsne_sites="ends"),
    "tiny": Plan(n_examples=64, bdm_points=4, causal_points=3, causal_pairs=16,
                 causal_random=2, causal_examples=64, llc_points=3, llc_chains=2, llc_draws=12,
                 llc_burnin=2, llc_batch=32, invariance_grid=2, invariance_samplers=("sgld",),
                 invariance_draws=8, invariance_chains=1,
                 surrogate=dict(ops=("add",), p=7, penalties=(0.0, 1.0), seeds=(0,), steps=60,
                                eval_points=6),
                 hidden_tsne_examples=200, hidden_tsne_sites="ends"),
}


def to_dict(plan: Plan) -> dict:
  return dataclasses.asdict(plan)


def from_dict(d: dict) -> Plan:
  """A Plan from its JSON form (tuples come back as lists and are restored); the
  RETIRED fields of older plan.json files are ignored, any other unknown field raises."""
  d = {k: v for k, v in d.items() if k not in RETIRED}
  fields = {f.name: f for f in dataclasses.fields(Plan)}
  unknown = sorted(set(d) - set(fields))
  if unknown:
    raise RunFolderError(f"unknown plan fields {unknown}")
  return Plan(**{k: _tuples(v) for k, v in d.items()})


def _tuples(v):
  if isinstance(v, list):
    return tuple(_tuples(x) for x in v)
  if isinstance(v, dict):
    return {k: _tuples(x) for k, x in v.items()}
  return v


def save(run_dir: str | os.PathLike, plan: Plan) -> None:
  runio.write_json(pathlib.Path(run_dir) / PLAN_FILE, to_dict(plan))


def load(run_dir: str | os.PathLike) -> Plan | None:
  """The plan a pipeline ran on this folder, or None where none was recorded."""
  path = pathlib.Path(run_dir) / PLAN_FILE
  if not path.is_file():
    return None
  record = runio.read_json(path)
  if not isinstance(record, dict):
    raise RunFolderError(f"cannot read {path}: it holds no plan object; the file is corrupted "
                         "or was edited")
  try:
    return from_dict(record)
  except TypeError as e:
    raise RunFolderError(f"cannot read {path}: {e}") from e
