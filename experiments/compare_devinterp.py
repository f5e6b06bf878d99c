"""The LLC by grokjax and by devinterp (PyTorch) with the same sampler settings.

  pip install -e .[devinterp]          # torch and devinterp, in an environment of their own
  python -m experiments.compare_devinterp --run_dir=runs/demo --out=compare_devinterp.json
  python -m experiments.compare_devinterp --problems=dln --dln_chains=8 --dln_draws=1000

Two problems: (a) a deep linear network at a rank-r teacher (`grokjax.slt.dln`; its λ is
known in closed form) and (b) a paper-model checkpoint of a run folder (by default the
wd-1 seed-42 run at its last step), loaded into experiments/torch_reference.py's `Model`
(experiments/torch_convert.py). Each tool runs SGLD with the same step ε, localisation γ,
nβ, chains, kept draws, burn-in and batch size; the JSON file holds per-chain λ̂ and wall
times, and a table is printed.

How devinterp 2.0.1's conventions map onto grokjax's (read in its source):
- Update. `SGMCMC.sgld` (sample's default) steps Δw = −(ε/2)(nβ·∇L_m + γ(w − w₀)) +
  √ε·N(0, 1): grokjax's `sgld` exactly — the localisation term is (γ/2)‖w − w*‖² in the
  potential in both, and the noise has variance ε in both (noise_level 1).
- nβ. devinterp has no default in `sample` (n_beta is required); its documented helper
  `default_nbeta(dataloader)` is b/log b with b the batch size, grokjax's default n/log n
  with n the examples (grokjax's nbeta="batch" is devinterp's). Both get n/log n here, given
  explicitly (`--nbeta=batch` runs both at b/log b); b/log b is 7–50× smaller on these
  problems and λ̂ is not invariant to it.
- Loss. devinterp back-propagates the batch mean of the per-token loss (gradient
  accumulation 1); grokjax's loss_fn is the batch mean: the same gradient scale. Our
  models predict one token, so the per-token loss is one number per example; an example
  travels to devinterp's loss_fn as its index (an "input_ids" row [i, i]).
- Draws. In both, draw t records the loss at w_t before the step, so the first draw is at
  w* itself. devinterp takes `num_burnin_steps` steps and then `num_draws` recorded ones;
  grokjax takes `num_draws` steps in all and drops the first `num_burnin`: grokjax gets
  num_draws = burn-in + draws.
- Burn-in and L_n(w*) in the estimate. devinterp's `compute_llc` averages the loss over every
  step, burn-in included, and takes L_n(w*) from `num_init_loss_batches` batches. The
  matched λ̂ reported for devinterp is nβ·(mean of its recorded draws − L_n(w*)), the draws
  after burn-in and L_n(w*) on all n examples, as grokjax computes it; devinterp's own
  `compute_llc` value is reported beside it.
- Minibatches. devinterp uses a shuffled DataLoader with drop_last, and "cycle" mode replays
  the first epoch's order (n mod b examples are never drawn); grokjax draws each batch
  uniformly with replacement. Both are unbiased for the gradient up to that remainder.
  Chains get independent batch orders in both (match_sampling_input_ids_across_chains off;
  devinterp's default shares one order, which correlates its chains).
- Chains. devinterp runs them one after another on deep copies; grokjax vmaps them in one
  compiled program (timed cold, compilation included, and warm). Spread: the std over
  chains with ddof 1 for both (devinterp's own `llc_std` is xarray's ddof 0).
- Diagnostics. grokjax's MALA acceptance is off here (it costs gradients devinterp does
  not take); grokjax's diverged-chain rule is reported but every chain is averaged, as
  devinterp averages every chain that stays finite.
"""

from __future__ import annotations

import importlib.metadata
import json

import jax
import numpy as np
import torch
from absl import app, flags

from experiments import llc_compare, torch_convert
from grokjax import runio
from grokjax.cli import run_main
from grokjax.errors import ConfigError
from grokjax.model import Transformer
from grokjax.slt import apply, dln
from grokjax.slt.llc import default_nbeta, resolve_nbeta

_PROBLEMS = flags.DEFINE_list("problems", ["dln", "paper"], "which of dln, paper to run")
_OUT = flags.DEFINE_string("out", "compare_devinterp.json", "the JSON results file")
_NBETA = flags.DEFINE_string("nbeta", "n", "nβ for both tools: n (n/log n), batch (b/log b, "
                              "devinterp's default_nbeta) or a number")
_SEED = flags.DEFINE_integer("sampler_seed", 0,
                             "grokjax's chain key; devinterp's init_seed is 100 + it")

_WIDTHS = flags.DEFINE_list("dln_widths", ["5", "4", "4", "5"], "DLN layer sizes, input first")
_RANK = flags.DEFINE_integer("dln_rank", 1, "rank of the teacher's product")
_N = flags.DEFINE_integer("dln_n", 10_000, "DLN examples")
_DLN_EPS = flags.DEFINE_float("dln_step_size", 1e-4, "DLN SGLD step ε (devinterp's lr)")
_DLN_GAMMA = flags.DEFINE_float("dln_localization", 100.0, "DLN localisation γ")
_DLN_CHAINS = flags.DEFINE_integer("dln_chains", 8, "DLN chains")
_DLN_DRAWS = flags.DEFINE_integer("dln_draws", 1000, "DLN kept draws per chain")
_DLN_BURNIN = flags.DEFINE_integer("dln_burnin", 200, "DLN burn-in steps")
_DLN_BATCH = flags.DEFINE_integer("dln_batch", 100, "DLN batch size")

_RUN_DIR = flags.DEFINE_string("run_dir", "runs/demo", "run folder of the paper-model checkpoint")
_RUN_SEED = flags.DEFINE_integer("seed", 42, "the run's seed")
_RUN_WD = flags.DEFINE_float("weight_decay", 1.0, "the run's weight decay")
_STEP = flags.DEFINE_integer("step", None, "checkpoint step (default: the last saved)")
_EPS = flags.DEFINE_float("step_size", 4e-6, "paper-model SGLD step ε")
_GAMMA = flags.DEFINE_float("localization", 1e4, "paper-model localisation γ")
_CHAINS = flags.DEFINE_integer("chains", 4, "paper-model chains")
_DRAWS = flags.DEFINE_integer("draws", 200, "paper-model kept draws per chain")
_BURNIN = flags.DEFINE_integer("burnin", 50, "paper-model burn-in steps")
_BATCH = flags.DEFINE_integer("batch", 512, "paper-model batch size")


def _both(problem: str, loss_fn, params, data, model, example_loss, n, s, **extra) -> list[dict]:
  rows = []
  for tool, run in (("grokjax", lambda: llc_compare.grokjax_llc(loss_fn, params, data, s)),
                    ("devinterp", lambda: llc_compare.devinterp_llc(model, example_loss, n, s))):
    rows.append({"problem": problem, "tool": tool, **extra, **run()})
    print(f"{problem} {tool}: {rows[-1]['llc_mean']:.3f} ± {rows[-1]['llc_std']:.3f} "
          f"in {rows[-1]['seconds']:.1f} s", flush=True)
  return rows


def _dln_rows(settings: dict) -> list[dict]:
  widths = [int(w) for w in _WIDTHS.value]
  p = dln.problem(widths, _RANK.value, _N.value, key=jax.random.key(0))
  nbeta = resolve_nbeta(_NBETA.value, num_examples=_N.value, batch_size=_DLN_BATCH.value)
  s = llc_compare.Setting(_DLN_EPS.value, _DLN_GAMMA.value, nbeta,
                          _DLN_CHAINS.value, _DLN_DRAWS.value, _DLN_BURNIN.value,
                          _DLN_BATCH.value, _SEED.value)
  settings["dln"] = {"widths": widths, "rank": _RANK.value, "n": _N.value,
                     "num_params": dln.num_params(widths), **vars(s),
                     "devinterp_default_nbeta": default_nbeta(s.batch)}
  return _both(f"DLN {'-'.join(map(str, widths))} r={_RANK.value}", dln.loss, p.params, p.data,
               llc_compare.DLN(p.params), llc_compare.dln_example_loss(*p.data), _N.value, s,
               closed_form=dln.learning_coefficient(widths, _RANK.value))


def _paper_rows(settings: dict) -> list[dict]:
  folder = runio.RunFolder.open(_RUN_DIR.value)
  run = runio.find_run(folder.cfg, seed=_RUN_SEED.value, weight_decay=_RUN_WD.value)
  step = _STEP.value if _STEP.value is not None else folder.steps[-1]
  params = jax.tree.map(lambda a: np.asarray(a[0, 0]), folder.params([step], [run]))
  cfg = folder.cfg.model_config
  data = apply.train_data(folder.cfg, run)
  n = int(data[1].shape[0])
  model = torch_convert.torch_model(params, cfg)
  check = np.asarray(data[0][:512])
  with torch.no_grad():
    got = model(torch.tensor(check, dtype=torch.long)).numpy()
  want = np.asarray(jax.jit(lambda p, x: Transformer(cfg).apply({"params": p}, x))(
      params, check))
  diff = float(np.abs(got - want).max())
  if not diff < 1e-3 * max(1.0, float(np.abs(want).max())):
    raise ConfigError(f"the PyTorch model's logits differ from grokjax's by {diff}")
  nbeta = resolve_nbeta(_NBETA.value, num_examples=n, batch_size=_BATCH.value)
  s = llc_compare.Setting(_EPS.value, _GAMMA.value, nbeta, _CHAINS.value,
                          _DRAWS.value, _BURNIN.value, _BATCH.value, _SEED.value)
  settings["paper"] = {"run_dir": _RUN_DIR.value, "run": run, "label": folder.runs[run].label,
                       "step": step, "n": n, "logit_max_abs_diff": diff, **vars(s),
                       "devinterp_default_nbeta": default_nbeta(s.batch)}
  return _both(f"paper {folder.runs[run].label} step {step}", apply.make_loss_fn(folder.cfg),
               jax.tree.map(jax.numpy.asarray, params), data, model,
               llc_compare.answer_example_loss(*map(np.asarray, data)), n, s)


def main(argv):
  del argv
  unknown = set(_PROBLEMS.value) - {"dln", "paper"}
  if unknown:
    raise ConfigError(f"--problems takes dln and paper, got {sorted(unknown)}")
  settings, rows = {}, []
  if "dln" in _PROBLEMS.value:
    rows += _dln_rows(settings)
  if "paper" in _PROBLEMS.value:
    rows += _paper_rows(settings)
  print(llc_compare.table(rows))
  record = {"settings": settings, "rows": rows,
            **runio.provenance([str(d) for d in jax.devices()]),
            "torch": torch.__version__, "devinterp": importlib.metadata.version("devinterp")}
  with runio.atomic_write(_OUT.value) as f:
    json.dump(record, f, indent=2)


if __name__ == "__main__":
  app.run(run_main(main))
