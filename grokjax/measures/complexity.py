"""Algorithmic complexity of quantised weights: BDM with pybdm's CTM tables, and proxies.

**Quantisation** (jittable). Each 2-D weight matrix (`model.weight_matrices`, in the
[fan_in, fan_out] layout, attention flattened over heads) is cut into `levels`
symbols: `method='quantile'` at its empirical quantiles (4 levels: the quartiles,
`np.quantile`'s linear rule, x < q1 -> 0, q1 <= x < q2 -> 1, ...; a constant matrix
-> all 0 — the authors' rule), `method='uniform'` at equal-width bins from min to max.

**BDM** (Zenil et al. 2018), host side: cut the symbol array into blocks, look up each
distinct block's CTM value (an estimate of its Kolmogorov complexity from the output
frequencies of small Turing machines), and add
  BDM(X) = sum over distinct blocks b of [CTM(b) + log2(n_b)]   (bits),
n_b the multiplicity of b. Blocks that do not fit at the right or bottom edge are left
out (pybdm's default 'ignore' boundary) and counted in `*/dropped_entries`. pybdm
0.1.0 ships 2-D CTM values for binary blocks only, so two encodings are offered:
  `bdm/2d`  table CTM-B2-D4x4 (binary 4x4 blocks). The 4-level code is Gray-coded
            (0 -> 00, 1 -> 01, 2 -> 11, 3 -> 10: neighbouring levels differ in one
            bit, so a weight crossing one quartile flips one bit) and each of the two
            bit-planes is scored as a binary matrix; the matrix's value is the sum
            over planes. This table holds every 4x4 binary block.
  `bdm/1d`  table CTM-B4-D12 (4-symbol strings of length 12) over the row-major
            sequence of the 4-level code. This table lacks about 13 % of the possible
            blocks; pybdm then uses its default (the table's maximum + 1 bit) and
            emits a warning. Here no warning is hidden and nothing is silent:
            `*/missing_blocks` and `*/missing_distinct` count the blocks scored by
            that default.
Our scorer is a vectorised re-implementation of pybdm's `BDM.bdm` / `BDM.ent` on the
same CTM tables (loaded with `pybdm.utils.get_ctm_dataset`), summing in pybdm's
order, so it agrees with a direct pybdm call exactly (tests check it); it is about
10x faster. Per matrix (`bdm/2d/matrix/<name>`), total over the tree (`bdm/2d/total`,
the sum over matrices), size-normalised (`bdm/2d/per_entry`: bits per scored entry)
and pybdm's block entropy (`bdm/2d/block_entropy`: Shannon entropy in bits of the
distribution of blocks, summed over matrices and bit-planes) for comparison.

**Block-gzip** (`block_gzip/*`): the quantity behind the authors' Fig. 4. Their script
pads each 4-level matrix with zeros to multiples of 4, cuts 4x4 blocks and adds, over
distinct blocks, [K(b) + log2(n_b)] where K(b) is the binary 4x4 CTM value when every
symbol of b is 0 or 1 (pybdm's binary solver accepts those) and otherwise the length in
bytes of `gzip.compress(b.astype(int8).tobytes())` (the solver raised, a bare `except`
fell back). `binary_ctm=False` scores every block by gzip. `block_gzip/ctm_distinct`
counts the distinct blocks that got a CTM value. It is a compression proxy, not BDM.

**Compression proxies** (`compress/*`): zlib (level 9) and lzma (preset 6, xz
container) lengths in bits of each matrix's symbols as uint8 bytes, row-major,
summed over matrices. Never labelled BDM.

>>> import jax
>>> from grokjax.config import MODEL_PRESETS
>>> from grokjax.model import init_params
>>> codes = quantise_tree(init_params(MODEL_PRESETS["tiny"], jax.random.key(0)))
>>> m = bdm_measures(codes)
>>> m["bdm/2d/missing_blocks"], m["bdm/1d/total"] > 0
(0, True)
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import importlib.util
import lzma
import math
import pickle
import sys
import types
import zlib
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.errors import ConfigError
from grokjax.model import weight_matrices

METHODS = ("quantile", "uniform")
ENCODINGS = ("2d", "1d")
TABLE_2D = "CTM-B2-D4x4"
TABLES_1D = {2: "CTM-B2-D12", 4: "CTM-B4-D12", 5: "CTM-B5-D12", 6: "CTM-B6-D12",
             9: "CTM-B9-D12"}


# ---------------------------------------------------------------- quantisation (jittable)

def order_statistics(x: jax.Array, ranks) -> jax.Array:
  """The values at 0-based `ranks` of sorted(x.ravel()), exactly, without sorting.

  Floats map to uint32 keys in the same order (negative ones with their magnitude bits
  flipped, then the sign bit flipped); the key at rank k is built bit by bit from the top,
  keeping a bit when fewer than k + 1 keys lie below it: 32 counting passes over x for
  every rank at once, ~4x faster than XLA's CPU sort of a [512, 128] matrix (BUILD_NOTES.md,
  "Measure lens speed").
  -0.0 sorts below 0.0 here (they compare equal, so quantile edges do not change)."""
  bits = jax.lax.bitcast_convert_type(x.reshape(-1).astype(jnp.float32), jnp.uint32)
  sign = jnp.uint32(0x80000000)
  keys = jnp.where(bits >= sign, ~bits, bits | sign)
  k = jnp.asarray(ranks, jnp.uint32)

  def bit(i, ans):
    cand = ans | (jnp.uint32(1) << (jnp.uint32(31) - i.astype(jnp.uint32)))
    below = jnp.sum(keys[None, :] < cand[:, None], axis=1, dtype=jnp.uint32)
    return jnp.where(below <= k, cand, ans)

  ans = jax.lax.fori_loop(0, 32, bit, jnp.zeros(k.shape, jnp.uint32))
  bits = jnp.where(ans >= sign, ans ^ sign, ~ans)
  return jax.lax.bitcast_convert_type(bits, jnp.float32)


def quantise(w: jax.Array, *, levels: int = 4, method: str = "quantile") -> jax.Array:
  """int8 symbols 0..levels-1 of a matrix: binned at its quantiles or at equal widths."""
  if method not in METHODS:
    raise ConfigError(f"unknown quantisation method {method!r}; valid: {', '.join(METHODS)}")
  if not 2 <= levels <= 127:
    raise ConfigError(f"levels must lie in [2, 127], got {levels}")
  w = w.astype(jnp.float32)
  cuts = np.arange(1, levels) / levels
  if method == "quantile":  # np.quantile's linear rule at static positions (cheap to compile)
    pos = cuts * (w.size - 1)
    lo, hi = np.floor(pos).astype(int), np.ceil(pos).astype(int)
    s = order_statistics(w, np.concatenate([lo, hi]))
    s_lo, s_hi = s[: len(lo)], s[len(lo):]
    edges = s_lo + (s_hi - s_lo) * (pos - lo).astype(np.float32)
  else:
    edges = jnp.min(w) + cuts.astype(np.float32) * (jnp.max(w) - jnp.min(w))
  codes = jnp.sum(w[..., None] >= edges, axis=-1)  # = np.digitize(w, edges) for sorted edges
  return jnp.where(jnp.max(w) == jnp.min(w), 0, codes).astype(jnp.int8)


def quantise_tree(params, *, levels: int = 4, method: str = "quantile") -> dict[str, jax.Array]:
  """Every weight matrix's symbols, by name (for BDM and for block-structure figures)."""
  return {k: quantise(w, levels=levels, method=method) for k, w in weight_matrices(params).items()}


_quantise_tree_jit = jax.jit(quantise_tree, static_argnames=("levels", "method"))


# ---------------------------------------------------------------- CTM tables

def import_pybdm():
  """pybdm 0.1.0 imports `resource_stream` from pkg_resources, which setuptools >= 81 no
  longer ships. Where pkg_resources is missing, a stand-in with only that function (from
  importlib.resources) is installed for the duration of the import and removed after."""
  if "pybdm" in sys.modules:
    return sys.modules["pybdm"]
  if importlib.util.find_spec("pkg_resources") is not None:
    import pybdm
    return pybdm
  shim = types.ModuleType("pkg_resources")
  shim.resource_stream = lambda pkg, name: importlib.resources.files(pkg).joinpath(name).open("rb")
  sys.modules["pkg_resources"] = shim
  try:
    import pybdm
  finally:
    if sys.modules.get("pkg_resources") is shim:
      del sys.modules["pkg_resources"]
  return pybdm


class CTMTable(NamedTuple):
  name: str
  shape: tuple[int, ...]  # block shape
  nsymbols: int
  codes: np.ndarray  # sorted int64 codes of the normalised blocks the table holds
  values: np.ndarray  # their CTM values (bits)
  missing: float  # pybdm's value for a block the table lacks: max + 1


@functools.lru_cache(maxsize=8)
def ctm_table(name: str) -> CTMTable:
  """pybdm's CTM table `name` for its full block shape, as sorted integer codes.

  Reads the same file as `pybdm.utils.get_ctm_dataset` (which also sorts every table
  by value, the slow part we do not need) and the same default for a missing block,
  the table's maximum + 1."""
  import_pybdm()
  from pybdm.ctmdata import CTM_DATASETS

  if name not in CTM_DATASETS:
    raise ConfigError(f"pybdm has no CTM table {name!r}; it has {sorted(CTM_DATASETS)}")
  blob = importlib.resources.files("pybdm.ctmdata").joinpath(CTM_DATASETS[name]).read_bytes()
  ctm = pickle.loads(gzip.decompress(blob))  # pybdm's own packaged data file
  nsymbols = int(name.split("-")[1][1:])
  shape = max(ctm, key=lambda s: math.prod(s))
  keys = np.array(list(ctm[shape]), dtype=f"S{math.prod(shape)}")
  digits = keys.view(np.uint8).reshape(len(keys), -1) - ord("0")
  codes = encode(digits, nsymbols)
  values = np.fromiter(ctm[shape].values(), np.float64, len(keys))
  order = np.argsort(codes)
  return CTMTable(name, shape, nsymbols, codes[order], values[order], float(np.max(values) + 1))


# ---------------------------------------------------------------- blocks

def encode(blocks: np.ndarray, base: int) -> np.ndarray:
  """[n, L] symbols -> [n] int64, the block read as a base-`base` number (pybdm's key)."""
  code = np.zeros(blocks.shape[0], np.int64)
  for j in range(blocks.shape[1]):
    code = code * base + blocks[:, j]
  return code


def normalise(blocks: np.ndarray, nsymbols: int) -> np.ndarray:
  """Relabels each block's symbols 0, 1, 2, ... in order of first appearance
  (pybdm's `normalize_key`, vectorised); CTM tables are keyed by this form."""
  n, length = blocks.shape
  present = blocks[:, :, None] == np.arange(nsymbols)  # [n, L, s]
  first = np.where(present.any(1), present.argmax(1), length + np.arange(nsymbols))
  rank = np.argsort(np.argsort(first, axis=1), axis=1)
  return np.take_along_axis(rank, blocks.astype(np.int64), axis=1)


def blocks_2d(x: np.ndarray, size: int = 4) -> tuple[np.ndarray, int]:
  """Non-overlapping size x size blocks, row-major order, flattened: ([n, size^2], dropped)."""
  r, c = x.shape[0] // size, x.shape[1] // size
  kept = x[: r * size, : c * size].reshape(r, size, c, size).transpose(0, 2, 1, 3)
  return kept.reshape(r * c, size * size), x.size - r * c * size * size


def blocks_1d(x: np.ndarray, length: int = 12) -> tuple[np.ndarray, int]:
  """Consecutive length-`length` pieces of the row-major sequence: ([n, length], dropped)."""
  flat = x.reshape(-1)
  n = flat.size // length
  return flat[: n * length].reshape(n, length), flat.size - n * length


class BlockScore(NamedTuple):
  bdm: float
  ent: float  # block entropy, bits
  n_blocks: int
  n_distinct: int
  missing_blocks: int  # blocks (with multiplicity) scored by the table's missing default
  missing_distinct: int


def score_blocks(blocks: np.ndarray, table: CTMTable) -> BlockScore:
  """BDM and block entropy of a list of blocks, exactly as pybdm's BDM.bdm / BDM.ent."""
  if blocks.shape[0] == 0:
    return BlockScore(0.0, 0.0, 0, 0, 0, 0)
  raw = encode(blocks, table.nsymbols)
  _, first, counts = np.unique(raw, return_index=True, return_counts=True)
  order = np.argsort(first)  # pybdm's Counter keeps first-occurrence order
  first, counts = first[order], counts[order]
  keys = encode(normalise(blocks[first], table.nsymbols), table.nsymbols)
  at = np.minimum(np.searchsorted(table.codes, keys), len(table.codes) - 1)
  found = table.codes[at] == keys
  ctm = np.where(found, table.values[at], table.missing)
  bdm, ent, total = 0, 0, int(counts.sum())
  for c, n in zip(ctm.tolist(), counts.tolist()):  # Python floats, pybdm's summation order
    bdm += c + math.log2(n)
    p = n / total
    ent -= p * np.log2(p)
  return BlockScore(float(bdm), float(ent), total, len(counts),
                    int(counts[~found].sum()), int((~found).sum()))


# ---------------------------------------------------------------- encodings

def gray_planes(codes: np.ndarray, levels: int = 4) -> list[np.ndarray]:
  """Bit-planes (most significant first) of the Gray code of 0..levels-1 symbols."""
  g = codes.astype(np.int64) ^ (codes.astype(np.int64) >> 1)
  bits = max(1, math.ceil(math.log2(levels)))
  return [((g >> b) & 1).astype(np.int8) for b in range(bits - 1, -1, -1)]


def table_1d(levels: int) -> str:
  fits = [n for n in TABLES_1D if n >= levels]
  if not fits:
    raise ConfigError(f"no 1-D CTM table for {levels} symbols; pybdm has {sorted(TABLES_1D)}")
  return TABLES_1D[min(fits)]


def bdm_matrix(codes: np.ndarray, *, levels: int = 4, encoding: str = "2d") -> dict:
  """BDM of one symbol matrix in one encoding: bdm, ent, counts, dropped entries."""
  if encoding == "2d":
    table = ctm_table(TABLE_2D)
    parts = [blocks_2d(plane, table.shape[0]) for plane in gray_planes(codes, levels)]
  elif encoding == "1d":
    table = ctm_table(table_1d(levels))
    parts = [blocks_1d(codes, table.shape[0])]
  else:
    raise ConfigError(f"unknown BDM encoding {encoding!r}; valid: {', '.join(ENCODINGS)}")
  scores = [score_blocks(b, table) for b, _ in parts]
  out = {f: sum(getattr(s, f) for s in scores) for f in BlockScore._fields}
  out["dropped_entries"] = sum(d for _, d in parts)
  out["entries"] = sum(b.size for b, _ in parts)
  return out


def block_gzip(codes: np.ndarray, *, size: int = 4, binary_ctm: bool = True) -> dict:
  """The authors' Fig. 4 quantity: sum over distinct zero-padded blocks of K(b) + log2 n_b."""
  pad = [(0, -n % size) for n in codes.shape]
  blocks, _ = blocks_2d(np.pad(codes.astype(np.int8), pad), size)
  _, first, counts = np.unique(blocks, axis=0, return_index=True, return_counts=True)
  order = np.argsort(first)
  distinct, counts = blocks[first[order]], counts[order]
  binary = (distinct <= 1).all(axis=1) & binary_ctm
  table = ctm_table(TABLE_2D)  # complete: every binary 4x4 block is in it
  ctm = np.zeros(len(counts))
  keys = encode(normalise(distinct[binary], 2), 2)
  ctm[binary] = table.values[np.searchsorted(table.codes, keys)]
  total = 0.0
  for b, n, is_bin, c in zip(distinct, counts.tolist(), binary.tolist(), ctm.tolist()):
    k = c if is_bin else len(gzip.compress(b.astype(np.int8).tobytes()))
    total += k + math.log2(n)
  return {"total": total, "distinct": len(counts), "ctm_distinct": int(binary.sum())}


def compressed_bits(codes: np.ndarray) -> dict:
  data = np.ascontiguousarray(codes, dtype=np.uint8).tobytes()
  return {"zlib": 8 * len(zlib.compress(data, 9)), "lzma": 8 * len(lzma.compress(data))}


# ---------------------------------------------------------------- the lens

def bdm_measures(quantised: dict, *, levels: int = 4, encodings=ENCODINGS,
                 extras: bool = True, binary_ctm: bool = True) -> dict[str, float]:
  """BDM (per matrix, total, per entry, block entropy, fallback counts) of symbol matrices,
  and with `extras` the block-gzip quantity and the zlib/lzma proxies."""
  mats = {k: np.asarray(v) for k, v in quantised.items()}
  out: dict[str, float] = {}
  for enc in encodings:
    per = {k: bdm_matrix(v, levels=levels, encoding=enc) for k, v in mats.items()}
    pre = f"bdm/{enc}"
    out[f"{pre}/total"] = sum(m["bdm"] for m in per.values())
    out[f"{pre}/per_entry"] = out[f"{pre}/total"] / max(1, sum(m["entries"] for m in per.values()))
    out[f"{pre}/block_entropy"] = sum(m["ent"] for m in per.values())
    for f in ("n_blocks", "missing_blocks", "missing_distinct", "dropped_entries"):
      out[f"{pre}/{f}"] = sum(m[f] for m in per.values())
    out.update({f"{pre}/matrix/{k}": m["bdm"] for k, m in per.items()})
  if extras:
    gz = {k: block_gzip(v, binary_ctm=binary_ctm) for k, v in mats.items()}
    out["block_gzip/total"] = sum(g["total"] for g in gz.values())
    out["block_gzip/distinct"] = sum(g["distinct"] for g in gz.values())
    out["block_gzip/ctm_distinct"] = sum(g["ctm_distinct"] for g in gz.values())
    out.update({f"block_gzip/matrix/{k}": g["total"] for k, g in gz.items()})
    comp = [compressed_bits(v) for v in mats.values()]
    n = sum(v.size for v in mats.values())
    for c in ("zlib", "lzma"):
      out[f"compress/{c}_bits"] = sum(x[c] for x in comp)
      out[f"compress/{c}_bits_per_entry"] = out[f"compress/{c}_bits"] / n
  return out


def complexity_measures(params, *, levels: int = 4, method: str = "quantile",
                        encodings=ENCODINGS, extras: bool = True) -> dict[str, float]:
  """Quantise a parameter tree and score it (host side; see bdm_measures)."""
  codes = jax.device_get(_quantise_tree_jit(params, levels=levels, method=method))
  return bdm_measures(codes, levels=levels, encodings=encodings, extras=extras)
