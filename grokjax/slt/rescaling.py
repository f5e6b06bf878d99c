"""Function-preserving rescalings of the pre-LN transformer (`grokjax.model`).

α, the residual stream. Multiplying every write into the residual stream by α — the
token and position embeddings, each attention block's `out_kernel` and `out_bias`,
each MLP's `fc_out` kernel and bias — multiplies the whole stream x by α. Every
reader of the stream goes through a LayerNorm (ln1, ln2, ln_f), and

    LN(α·x) = (x − μ) / sqrt(σ² + eps/α²) · scale + bias,

so the function is unchanged up to LayerNorm's eps: the normalised vector changes by
the factor sqrt((σ² + eps) / (σ² + eps/α²)) ≈ 1 + eps·(1 − 1/α²)/(2σ²), per position.
With eps = 1e-5 and σ² ≈ 1 that is 5e-4 at α = 0.1 and exact at eps = 0.

β, each MLP. Multiplying `fc_in` (kernel and bias) by β and the `fc_out` kernel by
1/β leaves the block unchanged when the activation is positively homogeneous:
relu(β·h) = β·relu(h) for β > 0, so it is exact (to rounding) for ReLU. GELU is not
homogeneous (gelu(β·h)/β = h·Φ(β·h)), so for GELU the β rescaling changes the function,
by an amount that depends on the pre-activations; `function_change` measures it.

Both act on whole tensors, so a model rescaled by (α, β) is a per-tensor rescaling of
the parameters: tok/pos embeddings, out_kernel, out_bias, fc_out bias by α; fc_in by
β; fc_out kernel by α/β. The rescalings work on stacked trees (leading axes) and
with traced α, β (inside jit/vmap).

>>> import jax
>>> from grokjax.config import MODEL_PRESETS
>>> from grokjax.model import init_params
>>> p = init_params(MODEL_PRESETS["tiny"], jax.random.key(0))
>>> q = rescale(p, alpha=2.0, beta=0.5)
>>> float(q["blocks_0"]["fc_out"]["kernel"][0, 0] / p["blocks_0"]["fc_out"]["kernel"][0, 0])
4.0
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _factor(names: tuple[str, ...], alpha, beta):
  """The factor for the parameter at `names` (its path in the tree)."""
  if names[0] in ("tok_embed", "pos_embed"):
    return alpha
  if names[0].startswith("blocks_"):
    if names[-1] in ("out_kernel", "out_bias"):
      return alpha
    if names[-2] == "fc_out":
      return alpha / beta if names[-1] == "kernel" else alpha
    if names[-2] == "fc_in":
      return beta
  return 1.0


def rescale_factors(params, *, alpha=1.0, beta=1.0):
  """A tree like `params` holding each tensor's scalar factor."""

  def factor(path, _):
    return _factor(tuple(str(getattr(k, "key", k)) for k in path), alpha, beta)

  return jax.tree_util.tree_map_with_path(factor, params)


def rescale(params, *, alpha=1.0, beta=1.0):
  """The parameters of the same function (exactly or approximately, see the module doc)."""
  return jax.tree.map(lambda x, f: x * f, params, rescale_factors(params, alpha=alpha,
                                                                  beta=beta))


def function_change(apply_fn, params, tokens, *, alpha=1.0, beta=1.0) -> dict[str, Array]:
  """How much rescaling by (α, β) moves the logits of `apply_fn(params, tokens)`.

  Returns the largest absolute change of a logit and that change relative to the
  largest absolute logit of the original model.
  """
  base = apply_fn(params, tokens)
  moved = apply_fn(rescale(params, alpha=alpha, beta=beta), tokens)
  diff = jnp.max(jnp.abs(moved - base))
  return {"logits/max_abs_change": diff, "logits/rel_change": diff / jnp.max(jnp.abs(base))}
