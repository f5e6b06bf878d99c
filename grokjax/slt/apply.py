"""The LLC of our transformer runs: their loss and data, and the LLC over training.

For a run of a sweep, the LLC is taken on the run's own training split (n examples,
so the default nβ = n / log n) with the training loss, the mean cross-entropy of the
answer logits. `llc_over_training` estimates it at chosen checkpoints of chosen runs:
per run, every chosen checkpoint goes through one compiled program (a `lax.map` over
the stacked checkpoints, `checkpoint_batch` of them vmapped at a time), each with the
same chain keys, so the curve over steps is not jittered by the sampler's randomness.
Each run may have its own checkpoints ({run: steps}); shorter lists are padded to the
longest so that every run shares one compilation.

Saturation. Each row also carries the chains' mean sampled loss E[L_m(w)] and
`saturated` = E[L_m(w)] ≥ 0.9 ln p > L_n(w*). A sampler whose step size is too large for its
localisation walks out of the basin to models that predict no better than chance, and
then λ̂ ≈ nβ (ln p − L_n(w*)) measures the training loss, not the local geometry (seen on
the paper model with ε = 1e-4, γ = 100: λ̂ ≈ 2,550 ≈ 551 × ln 97 at every trained
checkpoint). Such rows are flagged, never dropped; calibrate before trusting them.
Each row also carries the sampler diagnostics of `grokjax.slt.llc` (diag_ok, the failing
reasons in words, trend z, split-R̂, MALA acceptance, fraction of draws below L_n(w*)).

`invariance_at_checkpoint` runs `grokjax.slt.invariance.rescaling_grid` for several
samplers on one run at one checkpoint (experiments.llc_invariance and the pipeline).

>>> # rows = llc_over_training(runio.RunFolder.open("runs/demo"), key=jax.random.key(0),
>>> #                          sampler="sgld", step_size=4e-6, localization=1e4, every=100)
"""

from __future__ import annotations

from typing import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from grokjax import runio
from grokjax.config import SweepConfig
from grokjax.errors import ConfigError
from grokjax.model import Transformer
from grokjax.slt import autostep, invariance
from grokjax.slt import llc as llc_lib
from grokjax.train import answer_loss, run_data


def make_loss_fn(cfg: SweepConfig):
  """loss_fn(params, (inputs, targets)) -> mean answer cross-entropy, for `cfg`'s model.

  Build it once and reuse it: jit caches compilations by this function object.
  """
  model = Transformer(cfg.model_config)

  def loss_fn(params, batch):
    inputs, targets = batch
    return answer_loss(model, params, inputs, targets)[0].mean()

  return loss_fn


def train_data(cfg: SweepConfig, index: int) -> tuple[jax.Array, jax.Array]:
  """(inputs [n, 4], targets [n]) of the training split of run `index`."""
  run = run_data(cfg, cfg.runs[index])
  keep = np.asarray(run.is_train)
  return jnp.asarray(np.asarray(run.inputs)[keep]), jnp.asarray(np.asarray(run.targets)[keep])


# fraction of the chance-level loss ln p at which an estimate is flagged: the one threshold
# the in-program diagnostics use too
SATURATION = llc_lib.DIAG_THRESHOLDS["saturation"]


def saturated(sampled_loss, init_loss, p: int) -> bool:
  """Whether chains left a better-than-chance w* for near-chance models (module docstring).

  A checkpoint that is itself near chance (early in training) is not flagged: there the
  LLC is not meaningful anyway, as w* is no minimum, but no sampler setting is to blame.
  """
  level = SATURATION * np.log(p)
  return bool(sampled_loss >= level > init_loss)


def saturation_fields(llc_mean: float, init_loss: float, nbeta: float, p: int) -> dict:
  """The columns every LLC row carries: the chains' mean loss, ln p and the saturation flag.

  The mean sampled loss is recovered from λ̂ = nβ (E[L_m(w)] − L_n(w*)).
  """
  sampled = init_loss + llc_mean / nbeta
  return {"sampled_loss": sampled, "chance_loss": float(np.log(p)),
          "saturated": int(saturated(sampled, init_loss, p))}


def diag_fields(out: dict[str, np.ndarray], j: int) -> dict:
  """The diagnostics columns of checkpoint j's llc.csv row (`grokjax.slt.llc` module doc).

  diag_ok (bool: no failing flag), diag_reasons (the flags in words, 'ok' when none),
  and the numbers behind them: the trend z, split-R̂, the MALA acceptance (NaN where the
  sampler has none) and the fraction of draws below L_n(w*).
  """
  return {"diag_ok": bool(out["diag/ok"][j]),
          "diag_reasons": llc_lib.describe(int(out["diag/reasons"][j])),
          **{f"diag_{k}": float(out[f"diag/{k}"][j])
             for k in ("slope_z", "rhat", "accept", "below_init")}}


def _map_impl(loss_fn, params_S, data, key, step_size, grid, nbeta, localization, chance_loss,
              *, spec, batch):
  def one(params):
    kw = dict(key=key, spec=spec, nbeta=nbeta, localization=localization,
              chance_loss=chance_loss)
    if grid is None:
      return llc_lib.sample_llc(loss_fn, params, data, step_size=step_size, **kw)
    return autostep.auto_llc(loss_fn, params, data, step_sizes=grid, **kw)
  return jax.lax.map(one, params_S, batch_size=batch)


_map = jax.jit(_map_impl, static_argnames=("loss_fn", "spec", "batch"))


def llc_at_checkpoints(loss_fn, params_S, data, *, key, spec: llc_lib.ChainSpec, step_size,
                       nbeta, localization, checkpoint_batch: int = 1,
                       chance_loss: float = np.nan, step_grid=None) -> dict[str, np.ndarray]:
  """sample_llc at each of S stacked checkpoints (leading axis), in one program.

  `step_size` None: each checkpoint's ε is chosen from `step_grid` (ascending) by
  `grokjax.slt.autostep`. `chance_loss` (ln p) enables the saturation diagnostic; NaN
  leaves it unchecked.
  """
  grid = None if step_size is not None else jnp.asarray(step_grid, jnp.float32)
  eps = jnp.float32(np.nan if step_size is None else step_size)
  out = _map(loss_fn, params_S, data, key, eps, grid, jnp.float32(nbeta),
             jnp.float32(localization), jnp.float32(chance_loss), spec=spec,
             batch=max(1, int(checkpoint_batch)))
  return {k: np.asarray(v) for k, v in out.items()}


def llc_over_training(folder: runio.RunFolder, *, key: jax.Array, sampler="sgld",
                      step_size: float | None, localization: float, nbeta=None,
                      step_grid=autostep.DEFAULT_GRID, num_chains: int = 4,
                      num_draws: int = 200, num_burnin: int = 0, batch_size: int | None = 512,
                      runs: Sequence[int] | None = None,
                      steps: Sequence[int] | Mapping[int, Sequence[int]] | None = None,
                      every: int | None = None, sampler_kwargs: dict | None = None,
                      checkpoint_batch: int = 1, log=print) -> list[dict]:
  """Tidy rows (run fields, step, settings, llc_mean, llc_std, ..., diag_*) for llc.csv.

  `steps`: the steps of every run, or {run: its own steps} (`runs` None: the mapping's
  runs). `step_size` None: ε per checkpoint from `step_grid` (`grokjax.slt.autostep`);
  the row's step_size is the ε used and `step_rule` says "auto" or "fixed". Every row
  carries the in-program diagnostics (`diag_fields`, chance loss ln p).
  """
  cfg = folder.cfg
  grid = None if step_size is not None else autostep.check_grid(step_grid, sampler)
  per_run = _steps_per_run(folder, runs, steps, every)
  loss_fn = make_loss_fn(cfg)
  stacks = _stacked_params(folder, per_run)
  rows = []
  for r, chosen in per_run.items():
    data = train_data(cfg, r)
    n = int(data[1].shape[0])
    bs = None if batch_size is None else min(batch_size, n)
    spec = llc_lib.make_spec(sampler=sampler, num_chains=num_chains, num_draws=num_draws,
                             num_burnin=num_burnin, batch_size=bs, n=n,
                             sampler_kwargs=sampler_kwargs, eval_chunk=cfg.eval_chunk)
    nb = llc_lib.resolve_nbeta(nbeta, num_examples=n, batch_size=bs)
    llc_lib.check_hyper(step_size=grid[0] if grid is not None else step_size,
                        localization=localization, nbeta=nb)
    log(f"llc: run {r} ({cfg.runs[r].label}), {len(chosen)} checkpoints, sampler {sampler}"
        + ("" if grid is None else f", ε per checkpoint from {len(grid)} step sizes"))
    out = llc_at_checkpoints(loss_fn, stacks[r], data, key=jax.random.fold_in(key, r),
                             spec=spec, step_size=step_size, nbeta=nb,
                             localization=localization, checkpoint_batch=checkpoint_batch,
                             chance_loss=float(np.log(cfg.p)), step_grid=grid)
    for j, step in enumerate(chosen):
      llc_mean, init_loss = float(out["llc/mean"][j]), float(out["loss/init"][j])
      rows.append({**runio.run_fields(r, cfg.runs[r]), "step": step, "sampler": str(sampler),
                   **_step_fields(out, j, step_size, grid), "localization": localization,
                   "nbeta": nb,
                   "num_chains": num_chains, "num_draws": num_draws, "num_burnin": num_burnin,
                   "batch_size": bs if bs is not None else n,
                   "llc_mean": llc_mean, "llc_std": float(out["llc/std"][j]),
                   "init_loss": init_loss, "distance_mean": float(out["distance/mean"][j]),
                   "diverged": int(out["diverged/count"][j]),
                   **saturation_fields(llc_mean, init_loss, nb, cfg.p), **diag_fields(out, j)})
  return rows


def _step_fields(out, j: int, step_size, grid) -> dict:
  """The step-size columns of an llc.csv row: ε used, the rule, and for "auto" whether
  some ε of the grid passed its pilot, the pilot's acceptance at the ε used, the grid."""
  if grid is None:
    return {"step_size": step_size, "step_rule": "fixed", "autostep_ok": True,
            "autostep_accept": np.nan, "step_grid": ""}
  index = int(out["autostep/index"][j])
  return {"step_size": float(grid[index]), "step_rule": "auto",
          "autostep_ok": bool(out["autostep/ok"][j]),
          "autostep_accept": float(out["autostep/accept"][j][index]),
          "step_grid": grid_label(grid)}


def grid_label(grid) -> str:
  """The step-size grid as llc.csv's step_grid column writes it ('2.5e-07;5e-07;...')."""
  return ";".join(f"{float(v):.3g}" for v in grid)


def _steps_per_run(folder: runio.RunFolder, runs, steps, every) -> dict[int, list[int]]:
  """{run: its sorted saved steps}, from one list for every run or a mapping per run."""
  if not isinstance(steps, Mapping):
    chosen = folder.choose_steps(steps=steps, every=every, keep_last=True)
    return {r: chosen for r in folder.check_runs(runs)}
  if every is not None:
    raise ConfigError("give steps per run or --every, not both")
  runs = folder.check_runs(list(steps) if runs is None else runs)
  missing = [r for r in runs if r not in steps]
  if missing:
    raise ConfigError(f"no steps given for run(s) {missing}")
  return {r: folder.choose_steps(steps=steps[r]) for r in runs}


def _stacked_params(folder: runio.RunFolder, per_run: dict[int, list[int]]) -> dict:
  """{run: its checkpoints stacked on a leading axis}; each saved step is read once, for
  the runs that ask for it. Shorter stacks repeat their last checkpoint up to the longest
  (llc_over_training drops those rows): one compiled program serves every run, where a
  stack of another length would compile it again."""
  size = max(len(s) for s in per_run.values())
  taken = {}
  for step in sorted(set().union(*per_run.values())):
    rs = [r for r, s in per_run.items() if step in s]
    params = folder.params([step], rs)
    for k, r in enumerate(rs):
      taken[r, step] = jax.tree.map(lambda a, k=k: a[0, k], params)
  return {r: jax.tree.map(lambda *a: np.stack(a),
                          *(taken[r, step] for step in s + [s[-1]] * (size - len(s))))
          for r, s in per_run.items()}


def invariance_at_checkpoint(folder: runio.RunFolder, *, run: int, step: int, key: jax.Array,
                             samplers: Sequence[tuple[str, float, float]], alphas, betas,
                             nbeta=None, num_chains: int = 4, num_draws: int = 200,
                             num_burnin: int = 0, batch_size: int | None = 512,
                             log=print) -> tuple[list[dict], dict[str, dict]]:
  """The LLC of run `run` at `step` on the α x β rescaling grid, for each sampler.

  `samplers`: (name, step size ε, localisation γ) triples (defaults per sampler:
  `invariance.SAMPLER_SETTINGS`); every sampler uses the same chain keys. Returns
  (llc_invariance.csv rows, {sampler: rescaling_grid's arrays}).
  """
  cfg = folder.cfg
  (run,) = folder.check_runs([run])
  params = jax.tree.map(lambda a: a[0, 0], folder.params([step], [run]))
  data, loss_fn = train_data(cfg, run), make_loss_fn(cfg)
  bs = None if batch_size is None else min(batch_size, int(data[1].shape[0]))
  rows, outs = [], {}
  for sampler, eps, gam in samplers:
    log(f"invariance: {sampler} (ε={eps:g}, γ={gam:g}) on a {len(alphas)}x{len(betas)} grid, "
        f"run {run} ({cfg.runs[run].label}), step {step}")
    outs[sampler] = invariance.rescaling_grid(
        loss_fn, params, data, key=key, alphas=alphas, betas=betas, sampler=sampler,
        step_size=eps, localization=gam, nbeta=nbeta, num_chains=num_chains,
        num_draws=num_draws, num_burnin=num_burnin, batch_size=bs, eval_chunk=cfg.eval_chunk)
    rows += invariance.invariance_rows(outs[sampler], **runio.run_fields(run, cfg.runs[run]),
                                       step=step, sampler=sampler, step_size=eps,
                                       localization=gam)
  return rows, outs

