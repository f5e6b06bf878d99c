"""The causal lens on a run folder: per-head activation patching and head ablation.

  python -m experiments.causal --run_dir=runs/demo --steps=100,1000,2500 --pairs=256
  python -m experiments.causal --run_dir=runs/demo --ops=sub --weight_decays=1 \
      --positions=all --ablation=mean --random_orders=10

Writes DIR/causal.csv (run fields, step, layer, head, each effect and its standard
error), DIR/causal_ablation.csv (accuracy as heads are ablated, importance vs random
order) and per op DIR/causal_{op}.png (Figure-2 grid) and DIR/causal_ablation_{op}.png
(each also as PDF).
Without --steps, up to four saved steps spread evenly on a log scale are used.
"""

from __future__ import annotations

from absl import app, flags

from grokjax import runio
from grokjax.causal import apply
from grokjax.causal.apply import parse_heads
from grokjax import folder as folder_lib
from grokjax.cli import check_positive, load_run_dir, parse_ints, run_main
from grokjax.errors import ConfigError
from grokjax.figures import causal as causal_figures

_RUN_DIR = flags.DEFINE_string("run_dir", None, "run folder written by experiments.train")
_STEPS = flags.DEFINE_string("steps", "", "comma-separated saved steps (default: 4, log-spaced)")
_OPS = flags.DEFINE_list("ops", None, "only runs of these ops")
_WDS = flags.DEFINE_list("weight_decays", None, "only runs with these weight decays")
_SEEDS = flags.DEFINE_list("seeds", None, "only runs with these seeds")
_PAIRS = flags.DEFINE_integer("pairs", 256, "prompt pairs per run")
_SOURCE = flags.DEFINE_string("pair_source", "all", "all | train | test: where pairs come from")
_POSITIONS = flags.DEFINE_string("positions", "answer", "answer | all: positions patched")
_HEADS = flags.DEFINE_list("heads", None, "only these heads, as layer.head (e.g. 0.1,1.3)")
_ABLATION = flags.DEFINE_string("ablation", "zero", "zero | mean | none")
_RANDOM = flags.DEFINE_integer("random_orders", 5, "random ablation orders per run")
_ABL_SOURCE = flags.DEFINE_string("ablation_source", "test", "all | train | test")
_ABL_EXAMPLES = flags.DEFINE_integer("ablation_examples", 1024, "examples for ablated accuracy")
_POINTS = flags.DEFINE_integer("points", None, "points per ablation curve (default: every count)")
_METRIC = flags.DEFINE_string("metric", "logit_diff", "logit_diff | prob | recovered (heat maps)")
_SEED = flags.DEFINE_integer("seed", 0, "seed of the pairs, examples and random orders")
_MAX_BATCH = flags.DEFINE_integer("max_batch", None, "prompts per forward pass, bounds memory "
                                  "(default: ~512 MiB of activations)")


def select_runs(cfg) -> list[int]:
  return runio.filter_runs(cfg, ops=_OPS.value, weight_decays=_WDS.value, seeds=_SEEDS.value)


def main(argv):
  del argv
  check_positive(pairs=_PAIRS.value, random_orders=_RANDOM.value,
                 ablation_examples=_ABL_EXAMPLES.value, max_batch=_MAX_BATCH.value)
  folder = load_run_dir(_RUN_DIR.value)
  folder_lib.hold(folder.path)  # until this command ends: one writer per run folder
  run_dir, cfg = folder.path, folder.cfg
  if _METRIC.value not in causal_figures.LABELS:
    raise ConfigError(f"unknown --metric {_METRIC.value!r}; "
                      f"valid: {', '.join(causal_figures.LABELS)}")
  if _STEPS.value:
    steps = parse_ints(_STEPS.value, "steps")
  else:
    steps = folder.log_spaced(4)
  heads = parse_heads(_HEADS.value)
  if heads is not None and any(len(h) != 2 for h in heads):
    raise ConfigError(f"--heads takes layer.head items, e.g. 0.1,1.3; got {_HEADS.value}")
  opts = apply.CausalOptions(
      n_pairs=_PAIRS.value, pair_source=_SOURCE.value, positions=_POSITIONS.value, heads=heads,
      ablation=_ABLATION.value, n_random=_RANDOM.value, ablation_source=_ABL_SOURCE.value,
      ablation_examples=_ABL_EXAMPLES.value, points=_POINTS.value, seed=_SEED.value,
      max_batch=_MAX_BATCH.value)
  patch_rows, ablation_rows = apply.causal_over_training(folder, steps, select_runs(cfg), opts)
  runio.write_csv(run_dir / "causal.csv", patch_rows)
  t = runio.read_csv(run_dir / "causal.csv")
  written = [run_dir / "causal.csv"]
  for op in dict.fromkeys(t["op"].astype(str).tolist()):
    written += causal_figures.patching_grid(t, op, run_dir / f"causal_{op}", metric=_METRIC.value)
  if ablation_rows:
    runio.write_csv(run_dir / "causal_ablation.csv", ablation_rows)
    a = runio.read_csv(run_dir / "causal_ablation.csv")
    written.append(run_dir / "causal_ablation.csv")
    for op in dict.fromkeys(a["op"].astype(str).tolist()):
      written += causal_figures.ablation_curves(a, op, run_dir / f"causal_ablation_{op}")
  print("wrote " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
  app.run(run_main(main))
