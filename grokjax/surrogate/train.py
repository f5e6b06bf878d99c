"""Training the SFM: a seed × op × penalty grid as one vmapped, compiled program.

Optimiser: full-batch gradient descent (`optax.sgd`) on L_n + Ω (see `model`), from a
small random start, with the gates projected onto γ ≤ 1 after every step. Choice of
time scales (the one asymmetry the surrogate cannot produce by itself; BUILD_NOTES.md,
surrogate section): the gradients of the memorising factors are multiplied
by `mem_rate · n`, i.e. each lookup entry learns at the rate of its own example (a
fixed Jacobi preconditioner: a lookup entry touches 1 training example, a character
all n; the kernel regime in which a wide network memorises), and the group factors
start smaller (`group_init` < `mem_init`: a feature that has to be grown). Without the
first, plain gradient descent on a linear-in-features model learns the coherent group
features first (they receive n times the gradient) and there is no memorisation
phase; with equal inits the same happens (measured at p = 31: test accuracy 1.0 at
step 41 before train ≥ 0.99 at 51, and test ≥ 0.95 at step 17, respectively).

Records at log-spaced steps: train/test loss and (strict) accuracy, open gates per
family, `complexity/llc` = λ_A, `complexity/gate_mass`, `free_energy` = n·L_n +
λ_A·log n, feature-weight norms, and the spectral maps of the learned table.

>>> cfg = SurrogateConfig(ops=("add",), p=11, penalties=(1.0,), seeds=(0,), steps=20,
...                       eval_points=3)
>>> res = train(cfg)
>>> sorted({r["step"] for r in res.rows})
[0, 1, 4, 20]
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from grokjax.errors import ConfigError
from grokjax.surrogate import characters, model, spectra

Array = jax.Array


@dataclasses.dataclass
class SurrogateConfig:
  """The grid (ops × penalties × seeds, op slowest) and the SFM's hyperparameters."""

  ops: tuple[str, ...] = ("add", "sub", "mul", "div")
  p: int = 47
  penalties: tuple[float, ...] = (0.0, 0.3, 1.0, 3.0)  # η; 0 = Occam Gate penalty off
  seeds: tuple[int, ...] = (0, 1)
  train_frac: float = 0.5
  steps: int = 10_000
  lr: float = 0.2
  mem_init: float = 0.1
  group_init: float = 1e-3
  mem_rate: float = 1.0  # multiplies the per-example (Jacobi) rate n of the lookup factors
  gate_rate: float = 1.0  # rate of the gates relative to the factors
  crosstalk: float = 0.25  # ε
  crosstalk_load: int = 1  # other features each pair reads (crosstalk partners)
  init_noise: float = 1.0  # σ_0 of the frozen random logits f_0
  weight_bound: float = 20.0  # W: a feature adds at most g·W to a logit
  eval_points: int = 60  # log-spaced evaluation steps (plus step 0)

  @property
  def runs(self) -> list[tuple[str, float, int]]:
    return [(op, eta, seed) for op in self.ops for eta in self.penalties for seed in self.seeds]

  @property
  def eval_steps(self) -> np.ndarray:
    grid = np.round(np.geomspace(1, self.steps, self.eval_points)).astype(np.int64)
    return np.unique(np.concatenate([[0], grid, [self.steps]]))

  def validate(self) -> None:
    for name in ("ops", "penalties", "seeds"):
      if not getattr(self, name):
        raise ConfigError(f"{name} is empty")
    for op in self.ops:
      characters.check_group_op(op, self.p)
    for eta in self.penalties:
      if not (eta >= 0 and math.isfinite(eta)):
        raise ConfigError(f"penalties must be finite and >= 0, got {eta}")
    if not 0.0 < self.train_frac < 1.0:
      raise ConfigError(f"train_frac must lie in (0, 1), got {self.train_frac}")
    if not 0.0 <= self.crosstalk < 1.0:
      raise ConfigError(f"crosstalk must lie in [0, 1), got {self.crosstalk}")
    for name in ("lr", "mem_init", "group_init", "mem_rate", "gate_rate", "weight_bound"):
      if not getattr(self, name) > 0:
        raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
    if self.steps < 1 or self.eval_points < 1:
      raise ConfigError("steps and eval_points must be >= 1")

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "SurrogateConfig":
    names = {f.name for f in dataclasses.fields(cls)}
    if set(d) - names:
      raise ConfigError(f"unknown surrogate config keys: {sorted(set(d) - names)}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


class SFMState(NamedTuple):
  params: dict
  opt_state: optax.OptState


class SurrogateResult(NamedTuple):
  rows: list[dict]  # tidy: one per run × eval step
  steps: np.ndarray  # [E] eval steps
  maps: dict[str, np.ndarray]  # 'natural' [E, R, p, p], 'dlog' [E, R, p−1, p−1]
  final_params: dict  # the params of every run at the last step (leading runs axis)


def scale_rates(mem_factor: float, gate: float) -> optax.GradientTransformation:
  """Multiplies the gradients of the memorising factors u, v by `mem_factor` and those of
  every gate by `gate` (the group factors keep rate 1)."""

  def update(grads, state, params=None):
    del params
    mem = dict(grads["mem"], u=grads["mem"]["u"] * mem_factor, v=grads["mem"]["v"] * mem_factor)
    out = dict(grads, mem=mem)
    return {fam: dict(f, gate=f["gate"] * gate) for fam, f in out.items()}, state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def make_optimizer(cfg: SurrogateConfig, n_train: int) -> optax.GradientTransformation:
  """SGD with the per-family rates (the one `train` uses for this config)."""
  return _programs(cfg.lr, cfg.mem_rate * n_train, cfg.gate_rate, cfg.p)[0]


def project_gates(params) -> dict:
  """γ ≤ 1: a gate is at most fully open (closed gates, γ ≤ 0, are left where they are)."""
  return {fam: dict(f, gate=jnp.minimum(f["gate"], 1.0)) for fam, f in params.items()}


def train_step(tx: optax.GradientTransformation, state: SFMState, data: model.SFMData) -> SFMState:
  grads = jax.grad(model.objective)(state.params, data)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  return SFMState(project_gates(optax.apply_updates(state.params, updates)), opt_state)


def evaluate(params, data: model.SFMData, grid: spectra.GridIndex) -> dict[str, Array]:
  """Everything recorded at one eval step for one run (maps under 'map/...')."""
  lg = model.logits(params, data, jnp.arange(data.targets.shape[0]))
  ce = optax.softmax_cross_entropy_with_integer_labels(lg, data.targets)
  ok = model.strict_correct(lg, data.targets)
  tr, te = data.is_train, ~data.is_train
  mean = lambda v, m: jnp.sum(jnp.where(m, v, 0.0)) / jnp.maximum(jnp.sum(m), 1)
  n = data.train_rows.shape[0]
  out = {"train_loss": mean(ce, tr), "train_acc": mean(ok, tr),
         "test_loss": mean(ce, te), "test_acc": mean(ok, te)}
  out.update(model.complexity(params))
  out["free_energy"] = n * out["train_loss"] + out["complexity/llc"] * math.log(n)
  w_mem, w_group = model.feature_weights(params, data)
  out["norm/mem"], out["norm/group"] = jnp.sum(jnp.abs(w_mem)), jnp.sum(jnp.abs(w_group))
  p = data.key_slots.shape[0]
  group_y0 = ((w_group @ data.basis)[data.key_slots])[jnp.arange(p)]  # key of (x, 0) is x
  maps = spectra.spectral_maps(lg, grid, jnp.where(data.log_basis, 0.0, group_y0))
  own = maps["natural"]
  out["spectral/entropy"] = spectra.map_entropy(own)
  out["spectral/diag_fraction"] = spectra.diag_fraction(own, data.group_sign)
  if "dlog" in maps:
    out["spectral/entropy"] = jnp.where(data.log_basis, spectra.map_entropy(maps["dlog"]),
                                        out["spectral/entropy"])
    out["spectral/diag_fraction"] = jnp.where(
        data.log_basis, spectra.diag_fraction(maps["dlog"], data.group_sign),
        out["spectral/diag_fraction"])
  out.update({f"map/{k}": v for k, v in maps.items()})
  return out


def stack(trees):
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def build_runs(cfg: SurrogateConfig) -> tuple[model.SFMData, dict]:
  """Stacked data and initial params of every run (runs of a seed share split and init)."""
  datas, params = [], []
  for op, eta, seed in cfg.runs:
    data = model.build_data(op, cfg.p, seed=seed, penalty=eta, train_frac=cfg.train_frac,
                            crosstalk=cfg.crosstalk, crosstalk_load=cfg.crosstalk_load,
                            init_noise=cfg.init_noise, weight_bound=cfg.weight_bound)
    datas.append(data)
    params.append(model.init_params(data, key=jax.random.fold_in(jax.random.key(seed), 1),
                                    mem_init=cfg.mem_init, group_init=cfg.group_init))
  return stack(datas), stack(params)


@functools.lru_cache(maxsize=8)
def _programs(lr: float, mem_factor: float, gate_rate: float, p: int):
  """(optimizer, advance, measure) compiled once per setting and reused across calls."""
  tx = optax.chain(scale_rates(mem_factor, gate_rate), optax.sgd(lr))
  grid = spectra.GridIndex.for_p(p)

  @jax.jit
  def advance(state, data, k):
    step = jax.vmap(lambda s, d: train_step(tx, s, d))
    return jax.lax.fori_loop(0, k, lambda i, s: step(s, data), state)

  measure = jax.jit(jax.vmap(lambda prm, d: evaluate(prm, d, grid)))
  return tx, advance, measure


def train(cfg: SurrogateConfig) -> SurrogateResult:
  """Trains every run of the grid together; returns tidy rows and the spectral maps."""
  cfg.validate()
  data, params = build_runs(cfg)
  n_train = int(data.train_rows.shape[1])
  tx, advance, measure = _programs(cfg.lr, cfg.mem_rate * n_train, cfg.gate_rate, cfg.p)
  state = SFMState(params, jax.vmap(tx.init)(params))
  rows, maps, done = [], {}, 0
  for t in cfg.eval_steps:
    state = advance(state, data, jnp.int32(t - done))
    done = int(t)
    out = jax.device_get(measure(state.params, data))
    for name in [k for k in out if k.startswith("map/")]:
      maps.setdefault(name[4:], []).append(out.pop(name))
    for r, (op, eta, seed) in enumerate(cfg.runs):
      rows.append({"run": r, "op": op, "penalty": eta, "seed": seed, "step": done,
                   **{k: _scalar(v[r]) for k, v in out.items()}})
  _check_finite(rows)
  return SurrogateResult(rows, cfg.eval_steps, {k: np.stack(v) for k, v in maps.items()},
                         jax.device_get(state.params))


def _scalar(v):
  v = np.asarray(v)
  return int(v) if np.issubdtype(v.dtype, np.integer) else float(v)


def _check_finite(rows: list[dict]) -> None:
  from grokjax.errors import DivergenceError

  bad = sorted({(r["op"], r["penalty"], r["seed"]) for r in rows
                if not math.isfinite(r["train_loss"])})
  if bad:
    raise DivergenceError(f"non-finite training loss in runs {bad}; lower --lr")
