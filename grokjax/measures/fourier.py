"""Fourier localisation over Z_p, cyclic group structure, Occam-gate maps, circulant score.

**Basis.** For `add`/`sub` the group is Z_p and the basis is the DFT along the token
axis, F[k] = sum_x E[x] exp(-2 pi i k x / p). For `mul`/`div` the group of nonzero
residues Z_p^* is cyclic of order p - 1: with a primitive root g, x = g^j turns
x*y into j_x + j_y mod (p - 1). The "dlog" basis re-indexes the nonzero residues by
discrete logarithm (`tasks.dlog_residues`: row j holds residue g^j; residue 0 is
dropped) and transforms over Z_{p-1}. `basis='auto'` picks the group's basis from the op (polynomial ops:
natural); every result says which basis it used (`fourier/dlog_basis` is 1 or 0).

**Localisation of the embedding and the unembedding** (the number rows E[0..p-1] of
tok_embed, and the number columns of the unembedding, as rows). The rows are centred
over tokens (the mean is the k = 0 term; its share is reported as `*_dc_fraction`),
the power per frequency P[k] = sum_d |F[k, d]|^2 is folded (k and N - k carry the
same real signal), giving K = floor(N / 2) frequencies k = 1..K, and q = P / sum P:
  Gini   sum_i (2i - K - 1) P_(i) / (K sum P) over P sorted ascending: 0 uniform,
         (K - 1) / K for one frequency;
  IPR    sum q^2 = sum |F|^4 / (sum |F|^2)^2 per frequency: 1 / K uniform, 1 for one;
  entropy -sum q log q (nats), and its normalisation by log K;
  top-k  the share of the k strongest frequencies; key frequencies: the strongest,
         in order (1-based k).
The authors' variant (`fourier/fft2_*`): |FFT2| of the whole tok_embed matrix
[vocab, d_model], Gini of the magnitudes and IPR = sum |F|^4 / (sum |F|^2)^2.

**Cyclic structure.** Frequency k defines a plane in embedding space, spanned by
Re F[k] and Im F[k] (the cos and sin coefficient vectors). `fourier/cyclic_score` is
the share of the centred embedding's variance inside the span of the planes of the
`n_planes` strongest frequencies; `fourier/coords` [n_planes, N, 2] are the
embeddings projected on each plane (orthonormal basis by QR), for circle plots (row j
is residue j, or g^j in the dlog basis); `fourier/circularity` is the mean over the
planes of s_min / s_max of those coordinates (1: a circle, 0: a line).

**Occam gate.** T[x, y] is the model's logit of the correct answer on input
[x, op, y, =] for all x, y in Z_p (`occam/*`, the answer-table definition), and L_c[x, y]
the logit of each number class c (`occam/class/*`: each class's table is centred and
the power is pooled over classes). y = 0 is not part of the task; `y0='model'`
queries the model there anyway (the token exists and x op 0 is defined for add, sub
and mul), `y0='mean'` fills the column with the mean of the others; for div the
column has no answer and is always filled with the mean. In the dlog basis row and
column 0 are dropped, so y = 0 never matters for mul/div. The centred table's 2-D
DFT power |F[kx, ky]|^2 of a table that depends on x + y only lies on kx = ky, of one
that depends on x - y only on kx = -ky; so `diag_fraction` is the share of the power
on kx = ky (add, mul in dlog basis) or kx = -ky (sub, div): 1 for an exact
group-structured table, about 1 / N for noise. `axis_fraction` is the share on
kx = 0 or ky = 0 (a sum of a function of x and one of y). The map itself is `power`
[N, N] (unshifted). Polynomial ops predict no diagonal family: their values are NaN.
Caution (measured): at initialisation T is close to a function of the answer token
alone (each output token has its own logit offset), hence of x + y, so
`occam/diag_fraction` starts near 1 and falls while the network memorises. The
per-class tables carry no such offset (constant in x, y, removed by centring) and
start near 1 / N.

**Circulant score** (the authors'): for a square matrix W, C = F W F^-1 (F the DFT
matrix), score = sum_i |C_ii|^2 / sum |C|^2; 1 for a circulant matrix.

>>> import dataclasses, jax
>>> from grokjax.config import MODEL_PRESETS
>>> from grokjax.model import init_params
>>> cfg = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=13)  # p = 11
>>> m = fourier_measures(cfg, init_params(cfg, jax.random.key(0)), p=11, op="mul")
>>> int(m["fourier/dlog_basis"]), m["fourier/embed_power"].shape   # Z_10: 5 frequencies
(1, (5,))
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from grokjax import tasks
from grokjax.config import ModelConfig
from grokjax.errors import ConfigError
from grokjax.model import shared_prefix_logits, weight_matrices

Array = jax.Array
BASES = ("auto", "natural", "dlog")
# op -> (the group's basis, the sign of the diagonal family: +1 kx = ky, -1 kx = -ky)
GROUP_OPS = {"add": ("natural", 1), "sub": ("natural", -1), "mul": ("dlog", 1),
             "div": ("dlog", -1)}


# ---------------------------------------------------------------- bases

def resolve_basis(op: str, basis: str) -> str:
  if basis not in BASES:
    raise ConfigError(f"unknown Fourier basis {basis!r}; valid: {', '.join(BASES)}")
  if basis == "auto":
    return GROUP_OPS.get(op, ("natural", 0))[0]
  return basis


def in_basis(rows_PxD: Array, *, basis: str) -> Array:
  """The p number rows in the natural order, or the p - 1 nonzero ones by discrete log."""
  if basis == "dlog":
    return rows_PxD[tasks.dlog_residues(rows_PxD.shape[0])]
  return rows_PxD


# ---------------------------------------------------------------- localisation scores

def gini(v: Array) -> Array:
  """Gini coefficient of a nonnegative vector (last axis): 0 uniform, (n-1)/n one-hot."""
  s = jnp.sort(v, axis=-1)
  n = v.shape[-1]
  i = jnp.arange(1, n + 1)
  return jnp.sum((2 * i - n - 1) * s, axis=-1) / (n * jnp.sum(s, axis=-1))


def ipr(power: Array) -> Array:
  """Inverse participation ratio sum q^2 of a power vector, q = power / sum power."""
  q = power / jnp.sum(power, axis=-1, keepdims=True)
  return jnp.sum(q * q, axis=-1)


def entropy(power: Array) -> Array:
  """Entropy (nats) of power / sum power, 0 log 0 = 0."""
  q = power / jnp.sum(power, axis=-1, keepdims=True)
  return -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0), axis=-1)


def folded_power(rows_NxD: Array) -> tuple[Array, Array]:
  """(power at k = 0, [N // 2] power at k = 1..N//2 with k and N - k added) of the DFT."""
  n = rows_NxD.shape[0]
  power = jnp.sum(jnp.abs(jnp.fft.fft(rows_NxD, axis=0)) ** 2, axis=-1)
  k = np.arange(1, n // 2 + 1)
  return power[0], power[k] + power[n - k] * (k != n - k)  # Nyquist (even n) counted once


def localisation(rows_NxD: Array, *, prefix: str, top_k=(1, 5), n_key: int = 3) -> dict:
  """Gini, IPR, entropy, top-k share, key frequencies and power spectrum of the rows."""
  dc, _ = folded_power(rows_NxD)
  _, power = folded_power(rows_NxD - rows_NxD.mean(axis=0))
  h = entropy(power)
  out = {
      f"{prefix}_gini": gini(power),
      f"{prefix}_ipr": ipr(power),
      f"{prefix}_entropy": h,
      f"{prefix}_entropy_norm": h / np.log(max(power.shape[0], 2)),
      f"{prefix}_dc_fraction": dc / jnp.sum(jnp.abs(jnp.fft.fft(rows_NxD, axis=0)) ** 2),
      f"{prefix}_power": power,
  }
  total = jnp.sum(power)
  for k in top_k:
    out[f"{prefix}_top{k}"] = jnp.sum(jax.lax.top_k(power, min(k, power.shape[0]))[0]) / total
  key = jax.lax.top_k(power, min(n_key, power.shape[0]))[1] + 1
  out.update({f"{prefix}_key_freq_{i}": key[i] for i in range(key.shape[0])})
  return out


def fft2_localisation(w: Array, *, prefix: str = "fourier/fft2") -> dict:
  """The authors' variant: Gini and IPR of |FFT2(W)| over the whole matrix."""
  mag = jnp.abs(jnp.fft.fft2(w.astype(jnp.float32))).reshape(-1)
  return {f"{prefix}_gini": gini(mag), f"{prefix}_ipr": jnp.sum(mag**4) / jnp.sum(mag**2) ** 2}


def cyclic_structure(rows_NxD: Array, *, n_planes: int = 2, prefix: str = "fourier") -> dict:
  """Variance share of the strongest frequency planes, 2-D coordinates, circularity."""
  c = rows_NxD - rows_NxD.mean(axis=0)
  f = jnp.fft.fft(c, axis=0)
  _, power = folded_power(c)
  freqs = jax.lax.top_k(power, n_planes)[1] + 1
  planes = jnp.stack([f[freqs].real, f[freqs].imag], axis=-1)  # [n_planes, D, 2]
  q = jnp.linalg.qr(planes)[0]
  coords = jnp.einsum("nd,kdc->knc", c, q)  # [n_planes, N, 2]
  s = jnp.linalg.svd(coords, compute_uv=False)  # [n_planes, 2]
  joint = jnp.linalg.qr(jnp.concatenate(list(planes), axis=-1))[0]  # [D, 2 n_planes]
  return {
      f"{prefix}/cyclic_score": jnp.sum((c @ joint) ** 2) / jnp.sum(c**2),
      f"{prefix}/circularity": jnp.mean(s[:, 1] / s[:, 0]),
      f"{prefix}/coords": coords,
      f"{prefix}/plane_freqs": freqs,
  }


# ---------------------------------------------------------------- Occam gate

def logit_tables(cfg: ModelConfig, params, *, p: int, op: str, y0: str = "model"):
  """([p, p] logit of the correct answer, [p, p, p] logit of each number class c) over
  all x, y in Z_p, from one forward pass (y = 0: see y0 above). The prefix [x, op] is
  computed once per x (`model.shared_prefix_logits`)."""
  if y0 not in ("model", "mean"):
    raise ConfigError(f"unknown y0 {y0!r}; valid: model, mean")
  x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
  answers = jnp.asarray(tasks.apply_op(op, x, y, p))
  classes = shared_prefix_logits(cfg, params, tasks.encode(x, y, p))[..., :p]
  table = jnp.take_along_axis(classes, answers[..., None], axis=-1)[..., 0]
  if y0 == "mean" or op == "div":
    table = table.at[:, 0].set(jnp.mean(table[:, 1:]))
    classes = classes.at[:, 0].set(jnp.mean(classes[:, 1:], axis=(0, 1)))
  return table, classes


def answer_logit_table(cfg: ModelConfig, params, *, p: int, op: str, y0: str = "model") -> Array:
  """[p, p] logits of the correct answer of x op y for all x, y in Z_p (see y0 above)."""
  return logit_tables(cfg, params, p=p, op=op, y0=y0)[0]


def line_sums(table_NxNxC: Array, sign: int) -> Array:
  """[n, C] sums g[m] of the table over the cells with a + s b = m mod n (s = ±1): the
  2-D DFT bins (k, s k) of the table are the 1-D DFT of g."""
  n, a = table_NxNxC.shape[0], np.arange(table_NxNxC.shape[0])
  return table_NxNxC[a[None, :], (sign * (a[:, None] - a[None, :])) % n].sum(axis=1)


def occam_gate(table: Array, *, op: str, basis: str = "auto", prefix: str = "occam") -> dict:
  """Share of the 2-D DFT power of the centred table on the op's diagonal family.

  `table` is [N, N] over (x, y), or [N, N, C] with a class axis last: each class's
  table is centred and transformed, and the power is pooled over classes."""
  if op not in GROUP_OPS:
    raise ConfigError(f"op {op!r} has no predicted diagonal family; valid: {', '.join(GROUP_OPS)}")
  sign = GROUP_OPS[op][1]
  if resolve_basis(op, basis) == "dlog":
    r = tasks.dlog_residues(table.shape[0])
    table = table[r][:, r]
  t = table - jnp.mean(table, axis=(0, 1), keepdims=True)
  t = t.reshape(*t.shape[:2], -1)
  n = t.shape[0]
  # Parseval, without the [n, n] FFTs (the map below is computed only where it is read):
  # the bins (k, s k) hold the 1-D DFT of the line sums, the bins (0, k) and (k, 0) those
  # of the column and row sums, and (0, 0) the grand sum.
  g = line_sums(t, sign)
  cols, rows, f00 = t.sum(axis=0), t.sum(axis=1), t.sum(axis=(0, 1))
  total = n * n * jnp.sum(t**2)
  axis = n * (jnp.sum(cols**2) + jnp.sum(rows**2)) - 2 * jnp.sum(f00**2)
  power = (jnp.abs(jnp.fft.fft2(t, axes=(0, 1))) ** 2).sum(axis=-1)
  return {f"{prefix}/diag_fraction": n * jnp.sum(g**2) / total,
          f"{prefix}/axis_fraction": axis / total,
          f"{prefix}/power": power}


# ---------------------------------------------------------------- circulant score

def circulant_score(w: Array) -> Array:
  """sum |diag(F W F^-1)|^2 / sum |F W F^-1|^2 for a square matrix W."""
  c = jnp.fft.ifft(jnp.fft.fft(w.astype(jnp.float32), axis=0), axis=1)
  mag = jnp.abs(c) ** 2
  return jnp.trace(mag) / jnp.sum(mag)


def circulant_measures(params) -> dict:
  """Circulant score of every square weight matrix, and their mean."""
  square = {k: w for k, w in weight_matrices(params).items() if w.shape[-1] == w.shape[-2]}
  out = {f"circulant/{k}": circulant_score(w) for k, w in square.items()}
  if out:
    out["circulant/mean"] = jnp.mean(jnp.stack(list(out.values())))
  return out


# ---------------------------------------------------------------- the lens

def number_rows(params, p: int) -> tuple[Array, Array]:
  """([p, D] embedding rows, [p, D] unembedding columns) of the number tokens 0..p-1."""
  return params["tok_embed"]["embedding"][:p], params["unembed"]["kernel"][:, :p].T


def fourier_measures(cfg: ModelConfig, params, *, p: int, op: str, basis: str = "auto",
                     top_k=(1, 5), n_key: int = 3, n_planes: int = 2, y0: str = "model",
                     occam: bool = True, tables: tuple[Array, Array] | None = None
                     ) -> dict[str, Array]:
  """Every Fourier, cyclic, Occam-gate and circulant measure of one parameter tree.

  tables: `logit_tables(cfg, params, p=p, op=op, y0=y0)` when the caller has them."""
  used = resolve_basis(op, basis)
  embed, unembed = (in_basis(r, basis=used) for r in number_rows(params, p))
  out = {"fourier/dlog_basis": jnp.float32(used == "dlog")}
  out.update(localisation(embed, prefix="fourier/embed", top_k=top_k, n_key=n_key))
  out.update(localisation(unembed, prefix="fourier/unembed", top_k=top_k, n_key=n_key))
  out.update(fft2_localisation(params["tok_embed"]["embedding"]))
  out.update(cyclic_structure(embed, n_planes=n_planes))
  out.update(circulant_measures(params))
  if occam and op in GROUP_OPS:
    table, classes = tables or logit_tables(cfg, params, p=p, op=op, y0=y0)
    out.update(occam_gate(table, op=op, basis=used))
    out.update(occam_gate(classes, op=op, basis=used, prefix="occam/class"))
  elif occam:
    n = p - 1 if used == "dlog" else p
    for pre in ("occam", "occam/class"):
      out.update({f"{pre}/diag_fraction": jnp.float32(jnp.nan),
                  f"{pre}/axis_fraction": jnp.float32(jnp.nan),
                  f"{pre}/power": jnp.full((n, n), jnp.nan)})
  return out
