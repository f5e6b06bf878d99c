"""Train the theory surrogate (a Singular Feature Machine with an Occam Gate) and draw it.

  python -m experiments.surrogate --out=runs/surrogate
  python -m experiments.surrogate --ops=add,mul --p=31 --penalties=0,1 --seeds=0 \
      --steps=5000 --out=runs/sfm
  python -m experiments.surrogate --out=runs/surrogate --compare=runs/demo   # + transformer panel

Writes a run folder: config.json (config, versions, git commit), surrogate.csv (one
row per run × eval step), summary.csv (one row per run), maps.npz, and the figures
figure5.png, penalty_sweep.png (and comparison.png with --compare), each also as PDF.
The defaults (4 ops × 4 penalties × 2 seeds at p = 47, 10 000 steps) trained in
about 2 minutes on an idle 2-core CPU (BUILD_NOTES.md, the surrogate's results).
"""

from __future__ import annotations

from absl import app, flags

from grokjax.cli import check_unique, parse_ints, run_main
from grokjax.errors import ConfigError

flags.DEFINE_list("ops", ["add", "sub", "mul", "div"], "operations (group ops only)")
flags.DEFINE_integer("p", 47, "modulus")
flags.DEFINE_list("penalties", ["0", "0.3", "1", "3"], "Occam-gate penalty strengths η")
flags.DEFINE_list("seeds", ["0", "1"], "integer seeds")
flags.DEFINE_integer("steps", 10_000, "gradient steps")
flags.DEFINE_float("lr", 0.2, "learning rate")
flags.DEFINE_float("train_frac", 0.5, "fraction of pairs used for training")
flags.DEFINE_float("mem_init", 0.1, "init scale of the memorising factors")
flags.DEFINE_float("group_init", 1e-3, "init scale of the group factors")
flags.DEFINE_float("mem_rate", 1.0, "rate of the memorising factors in units of n (Jacobi)")
flags.DEFINE_float("crosstalk", 0.25, "crosstalk ε of a lookup entry onto colliding pairs")
flags.DEFINE_integer("crosstalk_load", 1, "features each pair collides with")
flags.DEFINE_float("init_noise", 1.0, "σ_0 of the frozen random logits at initialisation")
flags.DEFINE_float("weight_bound", 20.0, "largest logit one feature can add (c² of b(u))")
flags.DEFINE_float("gate_rate", 1.0, "learning rate of the gates relative to the factors")
flags.DEFINE_integer("eval_points", 60, "log-spaced evaluation steps")
flags.DEFINE_float("figure_penalty", None, "penalty shown in figure5 (default: median > 0)")
flags.DEFINE_string("compare", None, "a transformer run folder for the comparison panel")
flags.DEFINE_string("out", None, "run folder to write")
flags.DEFINE_bool("overwrite", False, "replace the files of a non-empty --out")
FLAGS = flags.FLAGS


def config_from_flags():
  from grokjax.surrogate.train import SurrogateConfig

  try:
    penalties = tuple(float(v) for v in FLAGS.penalties)
  except ValueError as e:
    raise ConfigError(f"--penalties takes comma-separated numbers, got {FLAGS.penalties}") from e
  check_unique("ops", FLAGS.ops)
  check_unique("penalties", penalties)
  cfg = SurrogateConfig(
      ops=tuple(FLAGS.ops), p=FLAGS.p, penalties=penalties,
      seeds=tuple(parse_ints(",".join(FLAGS.seeds), "seeds")), train_frac=FLAGS.train_frac,
      steps=FLAGS.steps, lr=FLAGS.lr, mem_init=FLAGS.mem_init, group_init=FLAGS.group_init,
      mem_rate=FLAGS.mem_rate, crosstalk=FLAGS.crosstalk, crosstalk_load=FLAGS.crosstalk_load,
      init_noise=FLAGS.init_noise, weight_bound=FLAGS.weight_bound, gate_rate=FLAGS.gate_rate,
      eval_points=FLAGS.eval_points)
  cfg.validate()
  return cfg


def main(argv):
  del argv
  import time

  from grokjax import folder
  from grokjax.figures import surrogate as plots
  from grokjax.surrogate import results, train

  if FLAGS.out is None:
    raise ConfigError("--out is required (the run folder to write)")
  cfg = config_from_flags()
  results.check_out_dir(FLAGS.out, overwrite=FLAGS.overwrite)
  folder.hold(FLAGS.out)  # until this command ends: one writer per run folder
  t0 = time.time()
  print(f"surrogate: {len(cfg.runs)} runs ({len(cfg.ops)} ops x {len(cfg.penalties)} penalties "
        f"x {len(cfg.seeds)} seeds), p={cfg.p}, {cfg.steps} steps", flush=True)
  res = train.train(cfg)
  out = results.write_run_folder(cfg, res, FLAGS.out, overwrite=FLAGS.overwrite)
  print(f"trained in {time.time() - t0:.0f} s; wrote {out}", flush=True)
  figs = [plots.figure5(out, penalty=FLAGS.figure_penalty)[0], plots.penalty_sweep(out)[0]]
  comp = plots.comparison(out, FLAGS.compare, penalty=FLAGS.figure_penalty)
  if FLAGS.compare is not None and comp is None:
    print(f"no comparison panel: {FLAGS.compare}/metrics.csv does not exist")
  figs += [comp[0]] if comp else []
  for row in results.summarize(cfg, res):
    print(f"  {row['op']:>3} η={row['penalty']:<4g} seed={row['seed']}: memorised at "
          f"{row['memorised_step']}, test ≥ 0.95 at {row['generalised_step']}, λ_A "
          f"{row['llc_init']:g} -> {row['llc_final']:g} (group: {row['group_features_final']})")
  print("figures: " + ", ".join(str(f) for f in figs))


if __name__ == "__main__":
  app.run(run_main(main))
