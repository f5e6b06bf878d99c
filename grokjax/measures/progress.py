"""Progress measures of Nanda et al. (2023): key frequencies, restricted and excluded loss,
and the Fourier-basis Gini of the neuron-logit map.

**Group and basis** as in `grokjax.measures.fourier`: for add/sub the group is Z_p and
the number tokens are taken in their natural order (N = p); for mul/div the basis is the
discrete log (token g^j at position j, token 0 dropped, N = p - 1), where x*y and x/y
become j_x + j_y and j_x - j_y mod N. Frequencies are k = 1..N//2, angular frequency
w = 2 pi k / N; k and N - k carry the same real signal and are counted together.

**Key frequencies** are read from the model's own spectrum: the number-token rows of
the embedding (and the number columns of the unembedding, as rows), centred over
tokens, are projected on the Fourier basis of Z_N, and the power of frequency k is the
squared norm of its cos and sin coefficients together (`fourier.folded_power`, the
same spectrum the Fourier lens ranks, so the top frequencies are exactly its
`fourier/embed_key_freq_*`). `source` picks the spectrum: 'embed', 'unembed' or 'both'
(the mean of the two power shares). The key set is the `n_key` strongest frequencies,
or (n_key=None) every frequency whose share of the power is at least `min_share`.
Nanda et al. fix the key set from the final checkpoint and use it at every step: pass
it as `freq_mask` (`freqs_mask(final key_freqs, K)`); without it each checkpoint uses
its own, which early in training are whatever frequencies noise favours.

**Restricted and excluded loss.** L[a, b, c] is the model's logit of number class c on
input (a, b) over the whole N x N grid in the op's basis (`fourier.logit_tables`: y = 0
is queried in the natural basis; for div that column is the mean of the others). For
each class c the table L[., ., c] is split along the terms of the op's group family,
cos(w (a + s b - c)) and sin(w (a + s b - c)) with s = +1 (add, mul) or -1 (sub, div).
For a fixed c these two span the same plane as cos(w (a + s b)) and sin(w (a + s b)),
so per class the key part is the orthogonal projection (over the N^2 grid) on
{cos, sin}(w (a + s b)) for the key w: in the 2-D DFT of L over (a, b) the bins
(k, s k) and (-k, -s k) mod N of each key k. Then
  restricted logits = mean over (a, b) of L (per class) + key part,
  excluded logits   = L - key part,
and the losses are the cross-entropy over the p number classes (Nanda's convention:
the op and '=' tokens are left out of the softmax, so these losses are slightly lower
than metrics.csv's, which normalise over all p + 2 tokens; `progress/full_loss` is the
unprojected logits' loss on the same examples and classes, for comparison). The
excluded loss is measured on the train set, the restricted loss on `restricted_on`
('train', 'test' or 'all' examples). In the dlog basis the row x = 0 (0 op y = 0) lies
outside Z_p^* and is left out of both. A model whose logits live on the key
frequencies has restricted loss = full loss and excluded loss = ln p (what is left is
constant over the grid). Nanda et al. project the MLP neuron activations of a 1-layer,
LayerNorm-free model and map them to logits linearly; with the pre-LN blocks and final
LayerNorm here no such linear map exists, so the logits themselves are projected.
Polynomial ops have no group family: their losses are NaN.

**Gini of the neuron-logit map.** W_L = W_out diag(gamma) W_U[:, :p] maps the last MLP's
neurons to the number logits (the final LayerNorm folded in as TransformerLens does:
its scale gamma into W_U, its mean subtraction by centring W_out's rows over d_model).
Its columns (outputs), in the op's basis and centred over outputs, are projected on the
Fourier basis; the norm per frequency (over neurons, cos and sin together) is
`progress/wl_norms` and `progress/gini` is their Gini coefficient (0 spread evenly,
(K - 1) / K on one frequency). `progress/wl_key_share` is the share of W_L's power on
the key frequencies.

Every function is pure in the parameter tree and the train mask, so the lens jits and
vmaps over a stacked runs axis.

>>> import dataclasses, jax, jax.numpy as jnp
>>> from grokjax.config import MODEL_PRESETS
>>> from grokjax.model import init_params
>>> cfg = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=13)  # p = 11
>>> mask = jnp.arange(11 * 10) % 2 == 0
>>> m = progress_measures(cfg, init_params(cfg, jax.random.key(0)), p=11, op="add",
...                       train_mask=mask, n_key=2)
>>> m["progress/key_freqs"].shape, m["progress/wl_norms"].shape
((2,), (5,))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from grokjax import tasks
from grokjax.config import ModelConfig
from grokjax.errors import ConfigError
from grokjax.measures import fourier

Array = jax.Array
SETS = ("train", "test", "all")
SOURCES = ("embed", "unembed", "both")


# ---------------------------------------------------------------- key frequencies

def frequency_power(rows_NxD: Array) -> Array:
  """[N // 2] power per frequency k = 1..N//2 of the rows centred over tokens."""
  return fourier.folded_power(rows_NxD - rows_NxD.mean(axis=0))[1]


def spectrum(params, *, p: int, basis: str, source: str = "embed") -> Array:
  """[N // 2] share of the power per frequency of the embedding, unembedding, or both."""
  if source not in SOURCES:
    raise ConfigError(f"unknown frequency source {source!r}; valid: {', '.join(SOURCES)}")
  shares = [q / jnp.sum(q) for q in (frequency_power(fourier.in_basis(r, basis=basis))
                                     for r in fourier.number_rows(params, p))]
  return {"embed": shares[0], "unembed": shares[1], "both": (shares[0] + shares[1]) / 2}[source]


def check_key_args(n_freqs: int, n_key: int | None, min_share: float | None) -> None:
  if (n_key is None) == (min_share is None):
    raise ConfigError("give exactly one of n_key and min_share for the key frequencies")
  if n_key is not None and not 1 <= n_key <= n_freqs:
    raise ConfigError(f"n_key must lie in [1, {n_freqs}] (the frequencies 1..N//2), got {n_key}")
  if min_share is not None and not 0.0 < min_share <= 1.0:
    raise ConfigError(f"min_share must lie in (0, 1], got {min_share}")


def freqs_mask(freqs, n_freqs: int) -> Array:
  """[n_freqs] 1.0 at the given 1-based frequencies (e.g. a final checkpoint's key_freqs)."""
  freqs = jnp.asarray(freqs, jnp.int32)
  return jnp.zeros(n_freqs, jnp.float32).at[freqs - 1].set(1.0)


def key_mask(share_K: Array, *, n_key: int | None = 3, min_share: float | None = None) -> Array:
  """[K] 1.0 on the key frequencies: the n_key largest shares, or the shares >= min_share."""
  check_key_args(share_K.shape[-1], n_key, min_share)
  if n_key is not None:
    top = jax.lax.top_k(share_K, n_key)[1]
    return jnp.zeros(share_K.shape, jnp.float32).at[top].set(1.0)
  return (share_K >= min_share).astype(jnp.float32)


# ---------------------------------------------------------------- restricted / excluded logits

def split_logits(table_NxNxC: Array, mask_K: Array, *, sign: int) -> tuple[Array, Array]:
  """(restricted, excluded) logits: per class, the grid mean plus the key-frequency part of
  the group family, and the table minus that part.

  The family's 2-D DFT bins (k, s k) hold the 1-D DFT G[k] of the sums g[m] of the table
  over the cells with a + s b = m mod n, so the key part is a function of m alone: the
  inverse DFT of G on the key k (both k and n - k), divided by n, read at m = a + s b. That
  costs O(n^3) against two [n, n] FFTs per class (the Nyquist k = n / 2 of an even n is
  one bin, a cosine)."""
  n = table_NxNxC.shape[0]
  a = np.arange(n)
  m = (a[:, None] + sign * a[None, :]) % n  # [a, b] -> a + s b
  g = fourier.line_sums(table_NxNxC, sign)  # [m, C]
  fold = np.minimum(a, n - a)
  w = jnp.where(fold >= 1, mask_K[np.clip(fold - 1, 0, mask_K.shape[0] - 1)], 0.0)
  h = jnp.fft.ifft(jnp.fft.fft(g, axis=0) * w[:, None], axis=0).real / n
  key = h[m]
  return table_NxNxC.mean(axis=(0, 1)) + key, table_NxNxC - key


def masked_ce(logits_NxNxC: Array, labels_NxN: Array, weight_NxN: Array) -> tuple[Array, Array]:
  """(mean cross-entropy, accuracy) over the grid cells with weight 1."""
  lse = jax.nn.logsumexp(logits_NxNxC, axis=-1)
  correct = jnp.take_along_axis(logits_NxNxC, labels_NxN[..., None], axis=-1)[..., 0]
  w = weight_NxN.astype(jnp.float32)
  hit = (jnp.argmax(logits_NxNxC, axis=-1) == labels_NxN).astype(jnp.float32)
  return jnp.sum(w * (lse - correct)) / jnp.sum(w), jnp.sum(w * hit) / jnp.sum(w)


def example_grids(p: int, op: str, train_mask: Array) -> tuple[Array, Array, Array]:
  """([p, p] answers, [p, p] train cells, [p, p] task cells) over all (x, y) in Z_p^2.

  train_mask is [p (p - 1)] over `tasks.make_task`'s examples (x-major, y = 1..p-1), as
  `train.run_data(...).is_train`; y = 0 is no example."""
  if train_mask.shape[-1] != tasks.num_examples(p):
    raise ConfigError(f"train_mask has {train_mask.shape[-1]} entries; the task has "
                      f"p (p - 1) = {tasks.num_examples(p)} examples")
  x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
  answers = jnp.asarray(tasks.apply_op(op, x, y, p).astype(np.int32))
  task = jnp.asarray(y != 0)
  train = jnp.zeros((p, p), bool).at[:, 1:].set(train_mask.reshape(p, p - 1).astype(bool))
  return answers, train, task


def table_losses(classes_PxPxC: Array, *, p: int, op: str, train_mask: Array, mask_K: Array,
                 basis: str = "auto", restricted_on: str = "train") -> dict[str, Array]:
  """Restricted, excluded and full loss (and accuracy) of a [p, p, C] logit table."""
  if restricted_on not in SETS:
    raise ConfigError(f"unknown restricted_on {restricted_on!r}; valid: {', '.join(SETS)}")
  names = ("restricted_loss", "restricted_acc", "excluded_loss", "excluded_acc", "full_loss")
  if op not in fourier.GROUP_OPS:
    return {f"progress/{k}": jnp.float32(jnp.nan) for k in names}
  answers, train, task = example_grids(p, op, train_mask)
  sets = {"train": train, "test": task & ~train, "all": task}
  table, on = classes_PxPxC, sets[restricted_on]
  if fourier.resolve_basis(op, basis) == "dlog":
    r = tasks.dlog_residues(p)
    table, answers, train, on = (g[r][:, r] for g in (table, answers, train, on))
  restricted, excluded = split_logits(table, mask_K, sign=fourier.GROUP_OPS[op][1])
  values = (*masked_ce(restricted, answers, on), *masked_ce(excluded, answers, train),
            masked_ce(table, answers, on)[0])
  return {f"progress/{k}": v for k, v in zip(names, values)}


# ---------------------------------------------------------------- neuron-logit map

def neuron_logit_map(params, p: int) -> Array:
  """[d_mlp, p] W_L = W_out diag(gamma) W_U[:, :p] of the last MLP (final LayerNorm folded)."""
  last = max((k for k in params if k.startswith("blocks_")), key=lambda k: int(k.split("_")[1]))
  w_out = params[last]["fc_out"]["kernel"]
  w_out = w_out - w_out.mean(axis=-1, keepdims=True)
  return (w_out * params["ln_f"]["scale"]) @ params["unembed"]["kernel"][:, :p]


# ---------------------------------------------------------------- the lens

def progress_measures(mc: ModelConfig, params, *, p: int, op: str, train_mask: Array,
                      n_key: int | None = 3, min_share: float | None = None,
                      source: str = "embed", basis: str = "auto", restricted_on: str = "train",
                      y0: str = "model", freq_mask: Array | None = None,
                      classes: Array | None = None) -> dict[str, Array]:
  """Key frequencies, restricted / excluded loss and the W_L Gini of one parameter tree.

  n_key (or min_share), source, basis, restricted_on and y0: see the module docstring.
  `freq_mask` [K] (e.g. `freqs_mask` of the final checkpoint's key frequencies, as Nanda
  et al. fix them for the whole run; it may differ per run under vmap) replaces the
  model's own key set in the losses and shares; the reported key frequencies stay the
  model's. Non-scalar entries: `progress/key_mask` [K] (the set the losses used),
  `progress/key_freqs` [n_key] (1-based, in decreasing power; top-K mode only),
  `progress/wl_norms` [K]. classes: `fourier.logit_tables(...)[1]` when the caller has it."""
  if restricted_on not in SETS:  # the checks table_losses makes, before the forward pass
    raise ConfigError(f"unknown restricted_on {restricted_on!r}; valid: {', '.join(SETS)}")
  example_grids(p, op, train_mask)
  used = fourier.resolve_basis(op, basis)
  share = spectrum(params, p=p, basis=used, source=source)
  mask = key_mask(share, n_key=n_key, min_share=min_share)
  if freq_mask is not None:
    if freq_mask.shape[-1] != share.shape[-1]:
      raise ConfigError(f"freq_mask has {freq_mask.shape[-1]} entries; the basis has "
                        f"{share.shape[-1]} frequencies")
    mask = freq_mask.astype(jnp.float32)
  wl_power = frequency_power(fourier.in_basis(neuron_logit_map(params, p).T, basis=used))
  out = {"progress/dlog_basis": jnp.float32(used == "dlog"),
         "progress/key_mask": mask,
         "progress/n_key": jnp.sum(mask),
         "progress/key_share": jnp.sum(mask * share),
         "progress/wl_norms": jnp.sqrt(wl_power),
         "progress/gini": fourier.gini(jnp.sqrt(wl_power)),
         "progress/wl_key_share": jnp.sum(mask * wl_power) / jnp.sum(wl_power)}
  if n_key is not None:
    freqs = (jax.lax.top_k(share, n_key)[1] + 1).astype(jnp.int32)
    out["progress/key_freqs"] = freqs
    out.update({f"progress/key_freq_{i}": freqs[i] for i in range(n_key)})
  if op in fourier.GROUP_OPS:
    if classes is None:
      classes = fourier.logit_tables(mc, params, p=p, op=op, y0=y0)[1]
  else:  # no group family: table_losses returns NaN without reading the table
    classes = jnp.zeros((p, p, p), jnp.float32)
  out.update(table_losses(classes, p=p, op=op, train_mask=train_mask, mask_K=mask, basis=used,
                          restricted_on=restricted_on))
  return out
