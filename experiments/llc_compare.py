"""grokjax's `estimate_llc` and devinterp's SGLD `sample` on one problem, settings matched.

experiments/compare_devinterp.py is the entry point; the module docstring there lists
how each convention is mapped. Here: `grokjax_llc` and `devinterp_llc` each return
per-chain λ̂ (burn-in dropped, L_n(w*) on the full data) and their wall time, devinterp's
own `compute_llc` numbers beside them; the DLN and the paper model as PyTorch modules
with per-example losses. Needs torch and devinterp (the `devinterp` extra).
"""

from __future__ import annotations

import dataclasses
import pathlib
import tempfile
import time
from typing import Callable

import jax
import numpy as np
import torch
from torch import nn

from grokjax.slt import llc


@dataclasses.dataclass(frozen=True)
class Setting:
  """The sampler settings both tools get; `draws` are kept draws, after `burnin` steps."""

  step_size: float
  localization: float
  nbeta: float
  chains: int
  draws: int
  burnin: int
  batch: int
  seed: int = 0


def _summary(per_chain: np.ndarray, seconds: float, **extra) -> dict:
  per_chain = np.asarray(per_chain, np.float64)
  return {"llc_mean": float(per_chain.mean()),
          "llc_std": float(per_chain.std(ddof=1)) if per_chain.size > 1 else float("nan"),
          "llc_per_chain": per_chain.tolist(), "seconds": seconds, **extra}


def grokjax_llc(loss_fn, params, data, s: Setting) -> dict:
  """estimate_llc with `s`: burnin + draws steps per chain, the first `burnin` dropped.

  Timed cold (compilation included, as a user first meets it) and again warm.
  """
  kw = dict(step_size=s.step_size, localization=s.localization, nbeta=s.nbeta,
            num_chains=s.chains, num_draws=s.burnin + s.draws, num_burnin=s.burnin,
            batch_size=s.batch, acceptance="off")
  t0 = time.perf_counter()
  out = jax.block_until_ready(llc.estimate_llc(loss_fn, params, data,
                                               key=jax.random.key(s.seed), **kw))
  cold = time.perf_counter() - t0
  t0 = time.perf_counter()
  jax.block_until_ready(llc.estimate_llc(loss_fn, params, data,
                                         key=jax.random.key(s.seed + 1), **kw))
  warm = time.perf_counter() - t0
  # every chain, as devinterp keeps every chain that stays finite
  return _summary(np.asarray(out["llc/per_chain"]), cold, warm_seconds=warm,
                  diverged=int(out["diverged/count"]),
                  init_loss=float(out["loss/init"]),
                  grokjax_llc_mean=float(out["llc/mean"]))


def _index_dataset(n: int):
  """An HF Dataset whose rows are [i, i]: devinterp hands a loss_fn "input_ids" and reads
  the per-token loss of the one next-token position, so example i travels as its index."""
  from datasets import Dataset

  ids = np.repeat(np.arange(n, dtype=np.int64)[:, None], 2, axis=1)
  return Dataset.from_dict({"input_ids": ids}).with_format("torch")


def devinterp_llc(model: nn.Module, example_loss: Callable, n: int, s: Setting) -> dict:
  """devinterp.slt.sampling.sample with `s`; `example_loss(model, idx) -> [batch]` losses."""
  from devinterp.slt.llc import compute_llc
  from devinterp.slt.sampling import sample

  def loss_fn(m, input_ids):
    return example_loss(m, input_ids[:, 0])[:, None]  # [batch, seq − 1 = 1]

  with torch.no_grad():
    init = float(torch.cat([example_loss(model, idx)
                            for idx in torch.arange(n).split(4096)]).mean())
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    samples = sample(model, _index_dataset(n), {}, lr=s.step_size, n_beta=s.nbeta,
                     localization=s.localization, num_chains=s.chains, num_draws=s.draws,
                     num_burnin_steps=s.burnin, batch_size=s.batch,
                     num_init_loss_batches=max(1, n // s.batch), init_seed=100 + s.seed,
                     match_sampling_input_ids_across_chains=False, device="cpu",
                     output_path=pathlib.Path(tmp) / "samples.zarr", loss_fn=loss_fn)
    draws = samples.dataset.sampling_loss.values.mean(axis=(2, 3))  # [chains, draws]
    native = compute_llc(samples)
    seconds = time.perf_counter() - t0
    return _summary(s.nbeta * (draws.mean(axis=1) - init), seconds, init_loss=init,
                    native_llc_mean=float(native.llc_mean),
                    native_llc_std=float(native.llc_std),
                    native_init_loss=float(native.init_loss))


class DLN(nn.Module):
  """x ↦ x·K_1···K_L with the kernels of grokjax.slt.dln (same [in, out] layout)."""

  def __init__(self, kernels):
    super().__init__()
    self.kernels = nn.ParameterList(nn.Parameter(torch.tensor(np.asarray(k))) for k in kernels)

  def forward(self, x):
    for k in self.kernels:
      x = x @ k
    return x


def dln_example_loss(x: np.ndarray, y: np.ndarray) -> Callable:
  """½‖y_i − f(x_i)‖² per example: grokjax.slt.dln.loss before its batch mean."""
  x, y = torch.tensor(np.asarray(x)), torch.tensor(np.asarray(y))
  return lambda model, idx: 0.5 * ((y[idx] - model(x[idx])) ** 2).sum(-1)


def answer_example_loss(inputs: np.ndarray, targets: np.ndarray) -> Callable:
  """The answer cross-entropy per example: grokjax.train.answer_loss."""
  x = torch.tensor(np.asarray(inputs), dtype=torch.long)
  y = torch.tensor(np.asarray(targets), dtype=torch.long)
  return lambda model, idx: nn.functional.cross_entropy(model(x[idx]), y[idx], reduction="none")


def table(rows: list[dict]) -> str:
  """A markdown table of the comparison rows."""
  head = "| problem | tool | λ̂ mean ± std (chains) | devinterp's own λ̂ | closed form | wall s |"
  lines = [head, "|" + "---|" * 6]
  for r in rows:
    native = r.get("native_llc_mean")
    truth = r.get("closed_form")
    lines.append(f"| {r['problem']} | {r['tool']} | {r['llc_mean']:.3f} ± {r['llc_std']:.3f} "
                 f"({len(r['llc_per_chain'])}) | {'' if native is None else f'{native:.3f}'} | "
                 f"{'' if truth is None else f'{truth:.3f}'} | {r['seconds']:.1f} |")
  return "\n".join(lines)
