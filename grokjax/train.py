"""One training run as pure functions: state, minibatches, the AdamW step, evaluation.

A run's data (`RunData`) holds the full example table of its op, its train/test split
and its minibatch key, so an op, a split or a seed is just another array and a sweep
is a `vmap` of these functions over a leading runs axis (see `grokjax.sweep`).
Learning rate, weight decay and the optimizer extras of `grokjax.optim` (Grokfast
filters, a weight-norm target) live in the optimizer state
(`optax.inject_hyperparams`), so they too are per-run arrays.

Minibatches: each epoch the training examples are reshuffled with
`fold_in(key, epoch)`, and the epoch is cut into floor(n_train / batch) batches (the
remainder is dropped, as a `DataLoader(drop_last=True)` would). The step reads only
`(state.step, run)`, so a resumed run draws exactly the batches an uninterrupted one
would.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from grokjax import optim, tasks
from grokjax.config import SweepConfig
from grokjax.model import Transformer, init_params

Array = jax.Array


class RunData(NamedTuple):
  """Everything a run trains and evaluates on, as arrays (stackable over runs)."""

  inputs: Array  # [N, 4] int32, the whole example table of the run's op
  targets: Array  # [N] int32
  is_train: Array  # [N] bool
  n_train: Array  # [] int32
  batch_key: Array  # [2] uint32 raw key for the epoch shuffles


@flax.struct.dataclass
class TrainState:
  params: dict
  opt_state: optax.OptState
  step: Array  # [] int32, steps taken so far
  diverged_at: Array  # [] int32, first step whose minibatch loss was not finite, or -1


def make_optimizer(cfg: SweepConfig, lr: float | Array = 1e-3, weight_decay: float | Array = 0.0,
                   *, grokfast_alpha: float | Array = 0.98, grokfast_lamb: float | Array = 0.0,
                   grokfast_window: int | Array = 1, weight_norm: float | Array = 0.0):
  """AdamW (decoupled weight decay, as torch.optim.AdamW) with lr and wd in its state.

  The chain is [Grokfast filter] -> [clip] -> AdamW -> [weight-norm projection]; the
  bracketed parts exist only if some run of the sweep uses them (`cfg.uses_grokfast`,
  `cfg.grad_clip > 0`, `cfg.uses_weight_norm`), so a plain sweep's optimizer and its
  state are what they were without them. Every hyperparameter is in the state, as
  float32: inject_hyperparams would otherwise take the parameters' dtype.
  """
  inject = functools.partial(optax.inject_hyperparams, hyperparam_dtype=jnp.float32)
  parts = []
  if cfg.uses_grokfast and cfg.grokfast_filter == "ema":
    parts.append(inject(optim.grokfast_ema)(
        alpha=grokfast_alpha, lamb=grokfast_lamb))
  elif cfg.uses_grokfast:
    parts.append(inject(optim.grokfast_ma, static_args=("max_window",))(
        window=grokfast_window, lamb=grokfast_lamb, max_window=cfg.grokfast_max_window))
  if cfg.grad_clip > 0:
    parts.append(optax.clip_by_global_norm(cfg.grad_clip))
  parts.append(inject(optax.adamw, static_args=("b1", "b2"))(
      learning_rate=lr, weight_decay=weight_decay, b1=cfg.b1, b2=cfg.b2))
  if cfg.uses_weight_norm:
    parts.append(inject(optim.fixed_weight_norm)(target=weight_norm))
  return parts[0] if len(parts) == 1 else optax.chain(*parts)


def run_hypers(specs) -> dict[str, np.ndarray]:
  """Per-run optimizer hyperparameters of `specs` as [R] arrays (keywords of init_state).

  A field a sweep's optimizer lacks (None in its RunSpecs) gets a neutral value that
  `make_optimizer` never reads.
  """
  neutral = {"grokfast_alpha": 0.98, "grokfast_lamb": 0.0, "grokfast_window": 1,
             "weight_norm": 0.0}
  out = {"lr": np.asarray([s.lr for s in specs], np.float32),
         "weight_decay": np.asarray([s.weight_decay for s in specs], np.float32)}
  for name, value in neutral.items():
    vals = [value if getattr(s, name) is None else getattr(s, name) for s in specs]
    out[name] = np.asarray(vals, np.int32 if name == "grokfast_window" else np.float32)
  return out


def init_state(cfg: SweepConfig, key: Array, lr, weight_decay, **optimizer_fields) -> TrainState:
  """A run's step-0 state; with a weight-norm target the initial params are put on it too."""
  params = init_params(cfg.model_config, key)
  if cfg.uses_weight_norm:
    params = optim.scale_to_norm(params, optimizer_fields.get("weight_norm", 0.0))
  opt_state = make_optimizer(cfg, lr, weight_decay, **optimizer_fields).init(params)
  return TrainState(params, opt_state, jnp.zeros((), jnp.int32), jnp.full((), -1, jnp.int32))


def batch_indices(run: RunData, step: Array, batch_size: int) -> Array:
  """Indices into the example table of the minibatch taken at `step`."""
  steps_per_epoch = run.n_train // batch_size
  epoch, pos = step // steps_per_epoch, step % steps_per_epoch
  key = jax.random.fold_in(jax.random.wrap_key_data(run.batch_key), epoch)
  # Random sort keys with test examples pushed last: a uniform permutation of the train
  # examples whose length need not be static (train fractions may differ across runs).
  u = jnp.where(run.is_train, jax.random.uniform(key, run.is_train.shape), 2.0)
  order = jnp.argsort(u)
  return jax.lax.dynamic_slice_in_dim(order, pos * batch_size, batch_size)


def answer_loss(model: Transformer, params, inputs: Array, targets: Array, *, prune=True):
  """Mean cross-entropy of the answer-position logits, and the per-example correctness."""
  logits = model.apply({"params": params}, inputs, prune=prune)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
  return losses, jnp.argmax(logits, -1) == targets


def train_step(cfg: SweepConfig, state: TrainState, run: RunData, batch_sharding=None):
  """One AdamW step of one run on its minibatch at `state.step`."""
  model = Transformer(cfg.model_config)
  idx = batch_indices(run, state.step, cfg.batch_size)
  x, y = run.inputs[idx], run.targets[idx]
  if batch_sharding is not None:
    x = jax.lax.with_sharding_constraint(x, batch_sharding)
  loss_fn = lambda p: answer_loss(model, p, x, y)[0].mean()
  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  bad = ~jnp.isfinite(loss) & (state.diverged_at < 0)
  return TrainState(params, opt_state, state.step + 1,
                    jnp.where(bad, state.step, state.diverged_at))


def evaluate(cfg: SweepConfig, params, run: RunData) -> dict[str, Array]:
  """Loss and accuracy on the full train and test splits (in chunks of eval_chunk)."""
  model = Transformer(cfg.model_config)
  n = run.targets.shape[0]
  chunk = min(cfg.eval_chunk, n)
  pad = -n % chunk
  xs = jnp.pad(run.inputs, ((0, pad), (0, 0))).reshape(-1, chunk, run.inputs.shape[-1])
  ys = jnp.pad(run.targets, (0, pad)).reshape(-1, chunk)
  losses, correct = jax.lax.map(lambda xy: answer_loss(model, params, *xy), (xs, ys))
  losses, correct = losses.reshape(-1)[:n], correct.reshape(-1)[:n].astype(jnp.float32)
  tr = run.is_train.astype(jnp.float32)
  te = 1.0 - tr
  return {
      "train_loss": jnp.sum(losses * tr) / jnp.sum(tr),
      "train_acc": jnp.sum(correct * tr) / jnp.sum(tr),
      "test_loss": jnp.sum(losses * te) / jnp.sum(te),
      "test_acc": jnp.sum(correct * te) / jnp.sum(te),
  }


def run_keys(seed: int) -> tuple[Array, Array, Array]:
  """(init, split, batch) keys of a run: a seed fixes weights, split and batch order."""
  init_key, split_key, batch_key = jax.random.split(jax.random.key(seed), 3)
  return init_key, split_key, batch_key


def run_data(cfg: SweepConfig, spec) -> RunData:
  """The example table, train/test split and batch key of one run of a sweep."""
  inputs, targets = tasks.make_task(spec.op, cfg.p)
  _, split_key, batch_key = run_keys(spec.seed)
  sp = tasks.split(split_key, cfg.p, spec.train_frac)
  return RunData(jnp.asarray(inputs), jnp.asarray(targets), sp.is_train,
                 jnp.int32(tasks.num_train(cfg.p, spec.train_frac)),
                 jax.random.key_data(batch_key))
