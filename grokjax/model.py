"""The decoder-only transformer of the paper, in flax linen.

Pre-LayerNorm blocks (`x + attn(ln1(x))`, `x + mlp(ln2(x))`), causal mask, learned
token and position embeddings, GELU MLP, final LayerNorm, unembedding without bias.
With `init='torch'` every parameter is initialised as PyTorch initialises the
authors' model (BUILD_NOTES.md, "The paper's protocol"): embeddings N(0, 1); linear layers
U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases; attention input
projections Xavier-uniform over the fused [3d, d] matrix with zero biases; a zero
output-projection bias.

The model returns the logits at the answer (last) position only, since the loss
reads nothing else. With `prune=True` (the default) the last block computes its
queries, MLP, final norm and unembedding at that position alone, which is exact and
saves about a third of the work. `shared_prefix_logits` runs a grid of sequences whose
first tokens depend on one axis alone (the task table [x, op | y, =]) with that prefix
computed once, the continuations attending to its keys and values (`prefix`).

Activation sites (returned with `return_sites=True`) use TransformerLens-style
names: `blocks.{l}.resid_pre`, `blocks.{l}.attn.pattern` [B, H, Q, T],
`blocks.{l}.attn.result` (each head's output after W_O, before the bias) [B, Q, H, D],
`blocks.{l}.resid_mid`, `blocks.{l}.mlp.hidden`, `blocks.{l}.resid_post`, and
`ln_final.out`. Q is the number of query positions: T, or 1 for the pruned last block.

An `Intervention` edits each head's result as `scale * result + add`, per layer,
example, position and head — zero ablation, mean ablation and activation patching are
all values of it, passed as a plain argument:

>>> import jax, jax.numpy as jnp
>>> from grokjax.config import MODEL_PRESETS
>>> cfg = MODEL_PRESETS["tiny"]
>>> model = Transformer(cfg)
>>> tokens = jnp.array([[3, 97, 5, 98]]) % cfg.vocab_size
>>> params = model.init(jax.random.key(0), tokens)["params"]
>>> zero_head0 = Intervention(scale=jnp.ones((2, 1, 4, 2)).at[:, :, :, 0].set(0.0))
>>> logits = model.apply({"params": params}, tokens, intervention=zero_head0)
>>> logits.shape
(1, 99)
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from grokjax.config import ModelConfig

Array = jax.Array


class Intervention(NamedTuple):
  """result[l, b, t, h] <- scale[l, b, t, h] * result[l, b, t, h] + add[l, b, t, h, :].

  Both fields are optional and broadcast against [L, B, T, H] (scale) and
  [L, B, T, H, D] (add); B and T may be 1. T is always the full sequence length; the
  pruned last block reads the last position.
  """

  scale: Array | None = None
  add: Array | None = None

  def layer(self, l: int, last_only: bool) -> "Intervention":
    pick = (lambda a: None if a is None else a[l][:, -1:]) if last_only else (
        lambda a: None if a is None else a[l])
    return Intervention(pick(self.scale), pick(self.add))


def _uniform(bound: float):
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


class _Inits(NamedTuple):
  embed: Any
  qkv_kernel: Any
  out_kernel: Any
  fc_in: Any  # (kernel, bias)
  fc_out: Any
  unembed: Any


def _inits(cfg: ModelConfig) -> _Inits:
  zeros = nn.initializers.zeros
  if cfg.init == "flax":
    dense = (nn.initializers.lecun_normal(), zeros)
    return _Inits(nn.initializers.normal(1.0), dense[0], dense[0], dense, dense, dense[0])
  d, m = cfg.d_model, cfg.d_mlp
  in_d, in_m = _uniform(1 / math.sqrt(d)), _uniform(1 / math.sqrt(m))
  return _Inits(
      embed=nn.initializers.normal(1.0),
      qkv_kernel=_uniform(math.sqrt(6.0 / (d + 3 * d))),  # xavier over the fused [3d, d]
      out_kernel=in_d,
      fc_in=(in_d, in_d),
      fc_out=(in_m, in_m),
      unembed=in_d,
  )


class Attention(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD, n_query: int, iv: Intervention, with_sites: bool,
               prefix: tuple[Array, Array] | None = None):
    """prefix: (keys, values) [B, P, H, E] of P earlier positions the T ones attend to."""
    cfg, init = self.cfg, _inits(self.cfg)
    dt = jnp.dtype(cfg.dtype)
    proj = functools.partial(
        nn.DenseGeneral, features=(cfg.n_heads, cfg.d_head), dtype=dt,
        kernel_init=init.qkv_kernel, bias_init=nn.initializers.zeros)
    T = x_BxTxD.shape[1]
    q_BxQxHxE = proj(name="query")(x_BxTxD[:, T - n_query:])
    k_BxTxHxE = proj(name="key")(x_BxTxD)
    v_BxTxHxE = proj(name="value")(x_BxTxD)
    sites = {"attn.k": k_BxTxHxE, "attn.v": v_BxTxHxE} if with_sites else {}
    if prefix is not None:
      k_BxTxHxE, v_BxTxHxE = (jnp.concatenate([a.astype(dt), b], axis=1)
                              for a, b in zip(prefix, (k_BxTxHxE, v_BxTxHxE)))
    P = k_BxTxHxE.shape[1] - T
    scores = jnp.einsum("bqhe,bthe->bhqt", q_BxQxHxE, k_BxTxHxE) / math.sqrt(cfg.d_head)
    causal_QxT = jnp.arange(P + T - n_query, P + T)[:, None] >= jnp.arange(P + T)[None, :]
    scores = jnp.where(causal_QxT, scores.astype(jnp.float32), -jnp.inf)
    pattern_BxHxQxT = jax.nn.softmax(scores, axis=-1).astype(dt)
    z_BxQxHxE = jnp.einsum("bhqt,bthe->bqhe", pattern_BxHxQxT, v_BxTxHxE)
    w_o = self.param("out_kernel", init.out_kernel, (cfg.n_heads, cfg.d_head, cfg.d_model))
    b_o = self.param("out_bias", nn.initializers.zeros, (cfg.d_model,))
    w_o = w_o.astype(dt)
    if iv.scale is None and iv.add is None and not with_sites:
      out = jnp.einsum("bqhe,hed->bqd", z_BxQxHxE, w_o)
    else:
      result_BxQxHxD = jnp.einsum("bqhe,hed->bqhd", z_BxQxHxE, w_o)
      if iv.scale is not None:
        result_BxQxHxD = result_BxQxHxD * iv.scale[..., None].astype(dt)
      if iv.add is not None:
        result_BxQxHxD = result_BxQxHxD + iv.add.astype(dt)
      out = result_BxQxHxD.sum(axis=2)
      sites = {**sites, "attn.pattern": pattern_BxHxQxT, "attn.result": result_BxQxHxD}
    return out + b_o.astype(dt), sites


class Block(nn.Module):
  cfg: ModelConfig

  @nn.compact
  def __call__(self, x_BxTxD, n_query: int, iv: Intervention, with_sites: bool,
               prefix: tuple[Array, Array] | None = None):
    """n_query: T for every block but a pruned last one, which computes 1 position;
    prefix: the attention's (keys, values) of earlier positions, see `Attention`."""
    cfg, init = self.cfg, _inits(self.cfg)
    dt = jnp.dtype(cfg.dtype)
    ln = functools.partial(nn.LayerNorm, epsilon=cfg.ln_eps, dtype=dt)
    attn_out, sites = Attention(cfg, name="attn")(ln(name="ln1")(x_BxTxD), n_query, iv,
                                                 with_sites, prefix)
    x_BxQxD = x_BxTxD[:, x_BxTxD.shape[1] - n_query:] + attn_out
    h = ln(name="ln2")(x_BxQxD)
    h = nn.Dense(cfg.d_mlp, dtype=dt, kernel_init=init.fc_in[0], bias_init=init.fc_in[1],
                 name="fc_in")(h)
    h = {"gelu": functools.partial(nn.gelu, approximate=False),
         "gelu_tanh": functools.partial(nn.gelu, approximate=True),
         "relu": nn.relu}[cfg.activation](h)
    out = x_BxQxD + nn.Dense(cfg.d_model, dtype=dt, kernel_init=init.fc_out[0],
                             bias_init=init.fc_out[1], name="fc_out")(h)
    if with_sites:
      sites = {**sites, "resid_pre": x_BxTxD, "resid_mid": x_BxQxD, "mlp.hidden": h,
               "resid_post": out}
    return out, sites


class Transformer(nn.Module):
  """Maps token sequences [B, T] to answer-position logits [B, vocab] (float32)."""

  cfg: ModelConfig

  def setup(self):
    cfg, init = self.cfg, _inits(self.cfg)
    self.tok_embed = nn.Embed(cfg.vocab_size, cfg.d_model, embedding_init=init.embed)
    self.pos_embed = self.param("pos_embed", init.embed, (cfg.seq_len, cfg.d_model))
    block = nn.remat(Block, static_argnums=(2, 4)) if cfg.remat else Block  # self is 0
    self.blocks = [block(cfg, name=f"blocks_{l}") for l in range(cfg.n_layers)]
    self.ln_f = nn.LayerNorm(epsilon=cfg.ln_eps, dtype=jnp.dtype(cfg.dtype))
    self.unembed = nn.Dense(cfg.vocab_size, use_bias=False, dtype=jnp.dtype(cfg.dtype),
                            kernel_init=init.unembed)

  def embed(self, tokens_BxT: Array, start: int = 0) -> Array:
    """Token plus position embeddings of positions start.., the input the blocks read."""
    return self.tok_embed(tokens_BxT) + self.pos_embed[start:start + tokens_BxT.shape[1]]

  def __call__(self, tokens_BxT, *, intervention: Intervention | None = None,
               return_sites: bool = False, prune: bool = True):
    return self.from_embeddings(self.embed(tokens_BxT), intervention=intervention,
                                return_sites=return_sites, prune=prune)

  def from_embeddings(self, x_BxTxD, *, intervention: Intervention | None = None,
                      return_sites: bool = False, prune: bool = True,
                      prefix: list[tuple[Array, Array]] | None = None):
    """The forward pass after the embedding lookup (for gradients w.r.t. the input).

    prefix: per block, the attention's (keys, values) [B, P, H, E] of P positions before
    these (the `attn.k` / `attn.v` sites of a forward pass over them; the embeddings
    must then start at position P)."""
    iv = intervention if intervention is not None else Intervention()
    x = x_BxTxD.astype(jnp.dtype(self.cfg.dtype))
    sites = {"embed": x}
    L = self.cfg.n_layers
    for l in range(L):
      last_only = prune and l == L - 1
      n_query = 1 if last_only else x.shape[1]
      x, s = self.blocks[l](x, n_query, iv.layer(l, last_only), return_sites,
                            None if prefix is None else prefix[l])
      sites.update({f"blocks.{l}.{k}": v for k, v in s.items()})
    x = self.ln_f(x[:, -1])
    logits_BxV = self.unembed(x).astype(jnp.float32)
    if return_sites:
      return logits_BxV, {**sites, "ln_final.out": x}
    return logits_BxV


def shared_prefix_logits(cfg: ModelConfig, params, tokens_AxBxT: Array) -> Array:
  """Answer-position logits [A, B, vocab] of the sequences tokens[a, b], whose first P
  tokens depend on a alone (P >= 1; checked): the blocks run once over each a's prefix
  and the B continuations attend to its keys and values: the prefix positions are computed
  A times instead of A * B times (on the task grid [x, op | y, =], half the first block's
  work). Equals the plain forward pass up to float rounding.

  `tokens_AxBxT` must be concrete (P is read from it): the task grids of the lenses."""
  tokens = np.asarray(tokens_AxBxT)
  same = np.all(tokens == tokens[:, :1], axis=1).all(axis=0)  # [T]: constant over b
  P = int(np.argmin(same)) if not same.all() else tokens.shape[2] - 1
  if P < 1:
    raise ValueError("the sequences share no prefix over their second axis")
  A, B, T = tokens.shape
  model, v = Transformer(cfg), {"params": params}
  _, sites = model.apply(v, jnp.asarray(tokens[:, 0, :P]), return_sites=True, prune=False)
  kv = [tuple(jnp.repeat(sites[f"blocks.{l}.attn.{n}"], B, axis=0) for n in "kv")
        for l in range(cfg.n_layers)]
  x = model.apply(v, jnp.asarray(tokens[:, :, P:].reshape(A * B, T - P)), P, method=model.embed)
  logits = model.apply(v, x, method=model.from_embeddings, prefix=kv)
  return logits.reshape(A, B, -1)


def init_params(cfg: ModelConfig, key: Array) -> dict:
  """Parameters of one model (a plain pytree)."""
  tokens = jnp.zeros((1, cfg.seq_len), jnp.int32)
  return Transformer(cfg).init(key, tokens, prune=False)["params"]


def weight_matrices(params: dict) -> dict[str, Array]:
  """Every weight matrix as 2-D [fan_in, fan_out], named by its path ('blocks_0/attn/query').

  Attention kernels are flattened over heads ([D, H*E] and [H*E, D]); biases and
  LayerNorm parameters are left out. Works on a stacked tree too (leading axes kept).
  """
  out = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    names = [str(getattr(k, "key", k)) for k in path]
    name, kind = "/".join(names[:-1]), names[-1]
    if kind == "embedding":
      out[name] = leaf
    elif kind == "pos_embed":
      out["pos_embed"] = leaf
    elif kind == "kernel" and names[-2] in ("query", "key", "value"):
      out[name] = leaf.reshape(*leaf.shape[:-2], leaf.shape[-2] * leaf.shape[-1])
    elif kind == "out_kernel":
      out[name + "/out"] = leaf.reshape(*leaf.shape[:-3], -1, leaf.shape[-1])
    elif kind == "kernel":
      out[name] = leaf
  return out
