"""Typed configuration: one dataclass tree, presets, JSON round trip.

`SweepConfig` is what a run folder records in `config.json`. The dataclasses are not
frozen so that command-line flags can override a preset; the library never mutates
a config it is given (it builds new ones with `dataclasses.replace`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import types
import typing
from typing import Any

from grokjax.errors import ConfigError


@dataclasses.dataclass
class ModelConfig:
  """Decoder-only pre-LN transformer (BUILD_NOTES.md, "The paper's protocol")."""

  n_layers: int = 2
  n_heads: int = 4
  d_model: int = 128
  d_mlp: int = 512
  vocab_size: int = 99  # p + 2: the numbers, then the op token and the '=' token
  seq_len: int = 4
  activation: str = "gelu"  # 'gelu' (exact erf, PyTorch's), 'gelu_tanh', 'relu'
  init: str = "torch"  # 'torch': PyTorch defaults the paper trained with; 'flax'
  ln_eps: float = 1e-5
  remat: bool = False  # rematerialise each block in the backward pass
  dtype: str = "float32"  # compute dtype; parameters stay float32

  @property
  def d_head(self) -> int:
    return self.d_model // self.n_heads

  def validate(self) -> None:
    if self.d_model % self.n_heads:
      raise ConfigError(f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}")
    if self.activation not in ("gelu", "gelu_tanh", "relu"):
      raise ConfigError(f"unknown activation {self.activation!r}; valid: gelu, gelu_tanh, relu")
    if self.init not in ("torch", "flax"):
      raise ConfigError(f"unknown init {self.init!r}; valid: torch, flax")
    if self.dtype not in ("float32", "bfloat16"):
      raise ConfigError(f"unknown dtype {self.dtype!r}; valid: float32, bfloat16")


MODEL_PRESETS: dict[str, ModelConfig] = {
    "paper": ModelConfig(),
    "gpt2-medium": ModelConfig(n_layers=24, n_heads=16, d_model=1024, d_mlp=4096, remat=True),
    "gpt2-large": ModelConfig(n_layers=36, n_heads=20, d_model=1280, d_mlp=5120, remat=True),
    "tiny": ModelConfig(n_layers=2, n_heads=2, d_model=32, d_mlp=128),
}


@dataclasses.dataclass
class RunSpec:
  """The hyperparameters that distinguish one run of a sweep from another.

  The optimizer fields are None where the sweep's optimizer does not have them (no
  Grokfast filter, an EMA filter has no window, no weight-norm constraint), so a plain
  AdamW sweep lists exactly the five fields it always had.
  """

  op: str
  seed: int
  weight_decay: float
  lr: float
  train_frac: float
  grokfast_alpha: float | None = None
  grokfast_lamb: float | None = None
  grokfast_window: int | None = None
  weight_norm: float | None = None

  @property
  def optimizer_fields(self) -> dict[str, float | int]:
    return {k: getattr(self, k) for k in OPTIMIZER_FIELDS if getattr(self, k) is not None}

  @property
  def label(self) -> str:
    extra = "".join(f" {k}={v:g}" for k, v in self.optimizer_fields.items())
    return (f"{self.op} seed={self.seed} wd={self.weight_decay:g} lr={self.lr:g} "
            f"frac={self.train_frac:g}{extra}")


OPTIMIZER_FIELDS = ("grokfast_alpha", "grokfast_lamb", "grokfast_window", "weight_norm")
# A RunSpec field -> the SweepConfig list that sweeps it, in the order of the runs product.
RUN_AXES = {"op": "ops", "weight_decay": "weight_decays", "seed": "seeds", "lr": "lrs",
            "train_frac": "train_fracs", "grokfast_alpha": "grokfast_alphas",
            "grokfast_lamb": "grokfast_lambs", "grokfast_window": "grokfast_windows",
            "weight_norm": "weight_norms"}
GROKFAST_FILTERS = ("ema", "ma")


def grid_order(grid):
  """RunSpec's positional order (op, seed, wd, ...) from the product's (op, wd, seed, ...)."""
  for op, wd, seed, *rest in grid:
    yield (op, seed, wd, *rest)


SEED_LIMIT = 2 ** 32  # jax.random.key reads a seed as uint32
# Checkpoint-trigger thresholds: a number > 0, or None (off). Any other value, 0
# included, is refused; only a run folder's config.json may say 0, which was "off"
# before None was (SweepConfig.from_dict reads it as None: the same sweep).
TRIGGER_FIELDS = ("ckpt_trigger_acc", "ckpt_trigger_loss")


@dataclasses.dataclass
class SweepConfig:
  """A grid of training runs that is trained as one compiled program.

  The runs are the product `ops × weight_decays × seeds × lrs × train_fracs ×
  grokfast_alphas × grokfast_lambs × grokfast_windows × weight_norms`, in that order
  (op slowest). A seed fixes the initialisation, the train/test split and the
  minibatch order, so two runs that differ only in op or weight decay start from the
  same weights, as in the authors' scripts.

  Optimizer extras (`grokjax.optim`), all per-run values: a Grokfast filter of kind
  `grokfast_filter` ('ema': momentum alpha; 'ma': a window of gradients, kept in a
  ring buffer of the sweep's largest window) amplified by lamb, where lamb = 0 is
  plain AdamW and a sweep whose lambs are all 0 has no filter at all; and Omnigrok's
  constraint of the parameters' total L2 norm to a target (0 or None: off).
  """

  ops: tuple[str, ...] = ("add", "sub", "mul", "div")
  p: int = 97
  seeds: tuple[int, ...] = (42, 101)
  weight_decays: tuple[float, ...] = (0.0, 1.0)
  lrs: tuple[float, ...] = (1e-3,)
  train_fracs: tuple[float, ...] = (0.5,)
  grokfast_filter: str = "ema"  # 'ema' | 'ma', for the runs with grokfast_lamb > 0
  grokfast_alphas: tuple[float, ...] = (0.98,)  # EMA momentum, in [0, 1)
  grokfast_lambs: tuple[float, ...] = (0.0,)  # amplification of the slow gradient; 0: off
  grokfast_windows: tuple[int, ...] = (100,)  # MA window (ring buffer: the largest one)
  weight_norms: tuple[float | None, ...] = (0.0,)  # target total L2 norm; 0 or None: off
  steps: int = 100_000
  batch_size: int = 512
  b1: float = 0.9
  b2: float = 0.98
  grad_clip: float = 0.0  # global-norm clipping; 0 disables (the scale-up models use 1.0)
  eval_every: int = 100
  ckpt_every: int = 100  # fixed checkpoints every K steps; 0: only step 0 and the last
  log_points: int = 8  # extra log-spaced eval/checkpoint steps before eval_every
  ckpt_steps: tuple[int, ...] = ()  # explicit checkpoint steps (+ the last); replace ckpt_every
  # more checkpoints (grokjax.ckpt_schedule): log-spaced over [1, steps], and triggered at an
  # evaluation when a run's accuracy (or ln loss) moved by more than a threshold (> 0;
  # None: off; see TRIGGER_FIELDS for config.json files that say 0 for off)
  ckpt_log_points: int = 0
  ckpt_trigger_acc: float | None = None
  ckpt_trigger_loss: float | None = None
  max_checkpoint_gb: float = 0.0  # disk budget of checkpoints/ in GB (1e9 bytes); 0: none
  model: str = "paper"  # a key of MODEL_PRESETS
  activation: str = "gelu"
  init: str = "torch"
  remat: bool | None = None  # None: the model preset's choice
  dtype: str = "float32"
  eval_chunk: int = 4096  # examples per forward pass when evaluating the full split

  @property
  def uses_grokfast(self) -> bool:
    return any(lamb > 0 for lamb in self.grokfast_lambs)

  @property
  def uses_weight_norm(self) -> bool:
    return any(n for n in self.weight_norms)

  @property
  def grokfast_max_window(self) -> int:
    """The MA ring buffer's static length (0 without an MA filter)."""
    ma = self.uses_grokfast and self.grokfast_filter == "ma"
    return max(self.grokfast_windows) if ma else 0

  @property
  def runs(self) -> list[RunSpec]:
    ema = self.uses_grokfast and self.grokfast_filter == "ema"
    grid = itertools.product(
        self.ops, self.weight_decays, self.seeds, self.lrs, self.train_fracs,
        self.grokfast_alphas if ema else (None,),
        self.grokfast_lambs if self.uses_grokfast else (None,),
        self.grokfast_windows if self.grokfast_max_window else (None,),
        tuple(float(n or 0.0) for n in self.weight_norms) if self.uses_weight_norm else (None,))
    return [RunSpec(*fields) for fields in grid_order(grid)]

  @property
  def model_config(self) -> ModelConfig:
    base = MODEL_PRESETS[self.model]
    remat = base.remat if self.remat is None else self.remat
    return dataclasses.replace(
        base, vocab_size=self.p + 2, activation=self.activation, init=self.init,
        remat=remat, dtype=self.dtype)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> "SweepConfig":
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
      raise ConfigError(f"unknown config keys: {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    for k, v in d.items():
      if not _matches(v, hints[k]):
        shown = repr(v) if len(repr(v)) <= 60 else repr(v)[:57] + "..."
        raise ConfigError(f"config field {k!r} must be {_describe(hints[k])}, got {shown}")
    tuples = {k: tuple(v) for k, v in d.items() if isinstance(v, list)}
    # a run folder's config.json from when 0 meant "no trigger": read as off (None), so the
    # folder resumes and reports as it trained; 0 from a flag or a new config is refused
    off = {k: None for k in TRIGGER_FIELDS if k in d and d[k] == 0 and not isinstance(d[k], bool)}
    return cls(**{**d, **tuples, **off})

  def validate(self) -> None:
    """Raises ConfigError with one readable line for the first problem found."""
    from grokjax import tasks  # tasks imports nothing from here; avoids a cycle at import

    for name in RUN_AXES.values():
      values = getattr(self, name)
      if not values:
        raise ConfigError(f"{name} is empty")
      if len(set(values)) != len(values):
        raise ConfigError(f"{name} has duplicate values {list(values)}: two runs would be one")
    for seed in self.seeds:
      # a seed becomes a uint32 key: a larger one would alias a smaller one's runs
      if not (isinstance(seed, int) and 0 <= seed < SEED_LIMIT):
        raise ConfigError(f"seeds must be integers in [0, 2**32), got {seed}")
    if self.model not in MODEL_PRESETS:
      raise ConfigError(f"unknown model {self.model!r}; valid: {', '.join(MODEL_PRESETS)}")
    for op in self.ops:
      tasks.check_op(op, self.p)
    for frac in self.train_fracs:
      if not 0.0 < frac < 1.0:
        raise ConfigError(f"train_frac must lie in (0, 1), got {frac}")
    for lr in self.lrs:
      if not (lr > 0 and math.isfinite(lr)):
        raise ConfigError(f"lr must be finite and positive, got {lr}")
    if not (self.grad_clip >= 0 and math.isfinite(self.grad_clip)):
      raise ConfigError(f"grad_clip must be finite and >= 0 (0: off), got {self.grad_clip}")
    for wd in self.weight_decays:
      if not (wd >= 0 and math.isfinite(wd)):
        raise ConfigError(f"weight_decay must be finite and >= 0, got {wd}")
    self._validate_optimizer()
    for name in ("steps", "batch_size", "eval_every"):
      if getattr(self, name) < 1:
        raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
    for s in self.ckpt_steps:
      if isinstance(s, bool) or not isinstance(s, int) or s < 0:
        raise ConfigError(f"ckpt_steps must be integers >= 0, got {s!r}")
    self._validate_checkpoints()
    n_min = min(tasks.num_train(self.p, frac) for frac in self.train_fracs)
    if self.batch_size > n_min:
      raise ConfigError(
          f"batch_size={self.batch_size} is larger than the train split ({n_min} examples "
          f"for p={self.p}, train_frac={min(self.train_fracs)})")
    self.model_config.validate()

  def _validate_checkpoints(self) -> None:
    for name in ("ckpt_every", "ckpt_log_points"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{name} must be an integer >= 0 (0: off), got {value!r}")
    for name in TRIGGER_FIELDS:
      value = getattr(self, name)
      if value is not None and not (value > 0 and math.isfinite(value)):
        raise ConfigError(f"{name} must be finite and > 0 (leave it unset for no trigger), "
                          f"got {value}")
    if not (self.max_checkpoint_gb >= 0 and math.isfinite(self.max_checkpoint_gb)):
      raise ConfigError(f"max_checkpoint_gb must be finite and >= 0 (0: off), got "
                        f"{self.max_checkpoint_gb}")

  def _validate_optimizer(self) -> None:
    if self.grokfast_filter not in GROKFAST_FILTERS:
      raise ConfigError(f"unknown grokfast_filter {self.grokfast_filter!r}; valid: ema, ma")
    for a in self.grokfast_alphas:
      if not 0.0 <= a < 1.0:
        raise ConfigError(f"grokfast_alpha must lie in [0, 1), got {a}")
    for lamb in self.grokfast_lambs:
      if not (lamb >= 0 and math.isfinite(lamb)):
        raise ConfigError(f"grokfast_lamb must be finite and >= 0, got {lamb}")
    for w in self.grokfast_windows:
      if isinstance(w, bool) or not isinstance(w, int) or w < 1:
        raise ConfigError(f"grokfast_window must be an integer >= 1, got {w!r}")
    for n in self.weight_norms:
      if n is not None and not (n >= 0 and math.isfinite(n)):
        raise ConfigError(f"weight_norm must be finite and >= 0 (0 or None: off), got {n}")
    ema = self.uses_grokfast and self.grokfast_filter == "ema"
    for name, used, why in (("grokfast_alphas", ema, "an EMA filter (grokfast_filter='ema')"),
                            ("grokfast_windows", bool(self.grokfast_max_window),
                             "an MA filter (grokfast_filter='ma')")):
      if len(getattr(self, name)) > 1 and not used:
        raise ConfigError(f"{name} has {len(getattr(self, name))} values but only "
                          f"{why} with a grokfast_lamb > 0 uses it")


def _matches(value, hint) -> bool:
  """Whether a JSON value fits a field's type hint (a list stands for a tuple; an
  integer is a number, a bool is neither)."""
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):
    return any(_matches(value, a) for a in args)
  if origin is tuple:
    return isinstance(value, (list, tuple)) and all(_matches(v, args[0]) for v in value)
  if isinstance(value, bool):
    return hint is bool
  if hint is float:
    return isinstance(value, (int, float))
  return isinstance(value, hint)


def _describe(hint) -> str:
  origin, args = typing.get_origin(hint), typing.get_args(hint)
  if origin in (typing.Union, types.UnionType):
    return " or ".join(_describe(a) for a in args)
  if origin is tuple:
    return f"a list whose items are each {_describe(args[0])}"
  names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
           type(None): "null"}
  return names.get(hint, hint.__name__)


PRESETS: dict[str, SweepConfig] = {
    # The paper's grid: 4 ops x 2 weight decays x 2 seeds, 100k steps (a GPU or TPU job).
    # Checkpoints log-spaced plus triggered by accuracy moves, within 5 GB, instead of the
    # authors' every 100 steps (27 GB): the transitions are saved densely wherever they fall.
    "paper": SweepConfig(ckpt_every=0, ckpt_log_points=80, ckpt_trigger_acc=0.05,
                         max_checkpoint_gb=5.0),
    # README's main job: x - y mod 97, both weight decays, two seeds; the wd-1 runs grok.
    # lr 3e-3 (3x the paper's) so that grokking fits 900 steps, under 5 minutes on a
    # 2-core CPU; at the paper's lr it comes at 1,900-2,000 (BUILD_NOTES.md, "CPU presets").
    "demo": SweepConfig(ops=("sub",), lrs=(3e-3,), steps=900, eval_every=50, ckpt_every=100),
    # Every op and both weight decays, two seeds, under 30 minutes on 2 CPU cores (same lr).
    "cpu-quick": SweepConfig(lrs=(3e-3,), steps=1200, eval_every=100, ckpt_every=200),
    # For tests and smoke runs: a tiny model on x + y mod 23 that groks in ~1,000 steps
    # (a larger lr and train fraction than the paper's, measured in BUILD_NOTES.md).
    "tiny": SweepConfig(
        ops=("add",), p=23, seeds=(0,), weight_decays=(1.0,), lrs=(3e-3,), train_fracs=(0.8,),
        steps=1500, batch_size=64, eval_every=50, ckpt_every=250, model="tiny"),
    # The scale-up protocol (GPU jobs): x - y mod 97 at wd 1, one seed, clipped at 1.0, bf16
    # compute (float32 params and optimizer state), remat from the model preset, checkpoints
    # at the four steps the head analysis reads. Batch 64 keeps GPT-2-large's activations
    # small next to its 7.9 GiB of params + AdamW state (grokjax.memory estimates both).
    "gpt2-medium": SweepConfig(
        ops=("sub",), seeds=(42,), weight_decays=(1.0,), batch_size=64, grad_clip=1.0,
        model="gpt2-medium", dtype="bfloat16", eval_every=1000,
        ckpt_steps=(100, 1_000, 10_000, 100_000)),
    "gpt2-large": SweepConfig(
        ops=("sub",), seeds=(42,), weight_decays=(1.0,), batch_size=64, grad_clip=1.0,
        model="gpt2-large", dtype="bfloat16", eval_every=1000,
        ckpt_steps=(100, 1_000, 10_000, 100_000)),
}
