"""BDM on the accelerator: pybdm's block decomposition as one jitted, batched program.

The same quantity as `complexity.bdm_matrix` (and `pybdm.BDM(...).bdm` / `.ent`), for
a leading batch axis (runs x checkpoints) of symbol matrices at once:
  BDM(X) = sum over distinct blocks b of [CTM(b) + log2(n_b)]   (bits).
Steps, all with static shapes so the program compiles once per matrix shape and batch:
  1. partition, pybdm's `PartitionIgnore` (the default of `pybdm.BDM`, the one the
     lens uses): 2-D, non-overlapping size x size blocks in row-major block order,
     the rows and columns that do not fill a block left out; 1-D, consecutive
     length-L pieces of the row-major sequence, the tail left out;
  2. each block read as a base-`nsymbols` integer (its raw key: pybdm counts blocks
     by `string_from_array(block)`, a bijection of it), and normalised (symbols
     relabelled 0, 1, 2, ... in order of first appearance, pybdm's `normalize_key`,
     the form CTM tables are keyed by). A normalised block's digit j is at most
     min(j, nsymbols - 1), so it is read in the mixed radix min(j + 1, nsymbols):
     a code below 2^31 for every table pybdm ships (9 symbols, length 12: 2.6e8);
  3. CTM lookup in pybdm's own table (its packaged file, loaded once as arrays): a
     dense array over the code space where that is small (<= 2^21 codes: the binary
     tables and CTM-B4-D12), else a search in the sorted codes. A block the table
     lacks scores pybdm's default, the table's maximum + 1, and is counted;
  4. multiplicities by sort-and-segment: the raw keys sorted (with each block's CTM
     value carried along), a segment starts where the key changes, its length is n_b.
     BDM and the block entropy -sum p_b log2 p_b (p_b = n_b / n) sum over segment
     starts.
The sums run in float64 (the program is traced and run under `jax.enable_x64`,
whatever the caller's setting): equal to pybdm's Python-float sums up to the order of
summation, i.e. a relative 1e-15 (tests check against pybdm itself).

>>> import numpy as np
>>> codes = {"w": np.random.default_rng(0).integers(0, 4, (2, 16, 24)).astype(np.int8)}
>>> rows = bdm_rows(codes)  # one dict per batch element, as complexity.bdm_measures
>>> len(rows), rows[0]["bdm/2d/missing_blocks"], rows[0]["bdm/2d/n_blocks"]
(2, 0, 48)
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from grokjax.errors import ConfigError
from grokjax.measures import complexity

DENSE_MAX = 2 ** 21  # code spaces up to this size are looked up in a dense array
FIELDS = ("bdm", "ent", "n_distinct", "missing_blocks", "missing_distinct")


# ---------------------------------------------------------------- tables as arrays

class DeviceTable(NamedTuple):
  """A CTM table as arrays, in one of three layouts (see `layout`):
  'raw' and 'dense' index `values` / `found` by a block's raw or normalised code,
  'sorted' holds the sorted normalised `codes` with their values."""
  codes: jax.Array  # int32 [m] sorted normalised codes ('sorted'), else [0]
  values: jax.Array  # float64 CTM values
  found: jax.Array  # bool, aligned with `values`
  missing: jax.Array  # float64 scalar, pybdm's default for a block the table lacks


def radix(length: int, nsymbols: int) -> np.ndarray:
  """Radix of each digit of a normalised block: min(j + 1, nsymbols)."""
  return np.minimum(np.arange(1, length + 1), nsymbols)


def place_values(length: int, nsymbols: int) -> np.ndarray:
  """Weights of the mixed-radix code: w_j = prod_{i > j} radix_i (int64)."""
  r = radix(length, nsymbols).astype(np.int64)
  return np.append(np.cumprod(r[::-1])[::-1][1:], 1)


def layout(name: str) -> str:
  """'raw' if every raw block code fits a dense array (binary tables), 'dense' if the
  normalised codes do (CTM-B4-D12), else 'sorted'."""
  table = complexity.ctm_table(name)
  length = math.prod(table.shape)
  if table.nsymbols ** length <= DENSE_MAX:
    return "raw"
  return "dense" if np.prod(radix(length, table.nsymbols).astype(float)) <= DENSE_MAX else "sorted"


def table_digits(table: complexity.CTMTable) -> np.ndarray:
  """[m, L] digits of the table's (normalised) blocks, decoded from its base-s codes."""
  return digits_of(table.codes, table.nsymbols, math.prod(table.shape))


def digits_of(codes: np.ndarray, base: int, length: int) -> np.ndarray:
  """[m, L] base-`base` digits (most significant first) of integer codes."""
  digits = np.zeros((len(codes), length), np.int64)
  rest = np.asarray(codes, np.int64).copy()
  for j in range(length - 1, -1, -1):
    rest, digits[:, j] = np.divmod(rest, base)
  return digits


@functools.lru_cache(maxsize=8)
def device_table(name: str) -> DeviceTable:
  """pybdm's CTM table `name` (read by `complexity.ctm_table`) as float64 arrays."""
  table = complexity.ctm_table(name)
  length, s = math.prod(table.shape), table.nsymbols
  kind = layout(name)
  if kind == "raw":  # every raw block: its normalised form looked up on the host
    raw = complexity.encode(complexity.normalise(digits_of(np.arange(s ** length), s, length), s), s)
    at = np.minimum(np.searchsorted(table.codes, raw), len(table.codes) - 1)
    found = table.codes[at] == raw
    values = np.where(found, table.values[at], table.missing)
  else:
    codes = table_digits(table) @ place_values(length, s)
    if kind == "dense":
      space = int(np.prod(radix(length, s).astype(np.int64)))
      values, found = np.full(space, table.missing, np.float64), np.zeros(space, bool)
      values[codes], found[codes] = table.values, True
    else:
      order = np.argsort(codes)
      codes, values, found = codes[order], table.values[order], np.ones(len(codes), bool)
  with jax.enable_x64(True):
    return DeviceTable(jnp.asarray(codes if kind == "sorted" else np.zeros(0), jnp.int32),
                       jnp.asarray(values, jnp.float64), jnp.asarray(found),
                       jnp.asarray(table.missing, jnp.float64))


# ---------------------------------------------------------------- blocks (jittable)

def view_2d(x_HxW: jax.Array, size: int = 4) -> jax.Array:
  """Non-overlapping size x size blocks (pybdm's 'ignore' partition: rows and columns
  that do not fill a block left out) as a view [r, size, c, size]: block (i, k) is
  view[i, :, k, :], blocks in row-major block order, digits row-major in the block.
  A view, not [n, size^2] blocks: the transpose would cost more than all the rest."""
  r, c = x_HxW.shape[0] // size, x_HxW.shape[1] // size
  return x_HxW[: r * size, : c * size].reshape(r, size, c, size)


def view_1d(x: jax.Array, length: int = 12) -> jax.Array:
  """[n, length] consecutive pieces of the row-major sequence, the tail left out."""
  flat = x.reshape(-1)
  n = flat.shape[0] // length
  return flat[: n * length].reshape(n, length)


def n_blocks(view: jax.Array) -> int:
  return view.shape[0] if view.ndim == 2 else view.shape[0] * view.shape[2]


def n_digits(view: jax.Array) -> int:
  return view.shape[1] if view.ndim == 2 else view.shape[1] * view.shape[3]


def columns(view: jax.Array) -> list[jax.Array]:
  """Digit columns of a block view: column j is digit j of every block, [n] each."""
  if view.ndim == 2:
    return [view[:, j] for j in range(view.shape[1])]
  return [view[:, a, :, b].reshape(-1) for a in range(view.shape[1]) for b in range(view.shape[3])]


def blocks(view: jax.Array) -> jax.Array:
  """[n, L] blocks of a view (for tests; `complexity.blocks_2d` / `blocks_1d`)."""
  return jnp.stack(columns(view), axis=1)


def gray_planes(codes: jax.Array, levels: int = 4) -> list[jax.Array]:
  """Bit-planes (most significant first) of the Gray code, as `complexity.gray_planes`."""
  c = codes.astype(jnp.int32)
  g = c ^ (c >> 1)
  bits = max(1, math.ceil(math.log2(levels)))
  return [(g >> b) & 1 for b in range(bits - 1, -1, -1)]


def raw_keys(view: jax.Array, nsymbols: int) -> jax.Array:
  """[n] int32 each block of a view read as a base-`nsymbols` number (pybdm counts
  blocks by `string_from_array(block)`, a bijection of it): a weighted reduce."""
  w = nsymbols ** np.arange(n_digits(view) - 1, -1, -1)
  if view.ndim == 2:
    return jnp.sum(view.astype(jnp.int32) * jnp.asarray(w, jnp.int32), axis=1)
  w = jnp.asarray(w.reshape(view.shape[1], view.shape[3]), jnp.int32)[None, :, None, :]
  return jnp.sum(view.astype(jnp.int32) * w, axis=(1, 3)).reshape(-1)


def normal_form(cols: list[jax.Array], nsymbols: int) -> tuple[jax.Array, jax.Array]:
  """([n] int32 mixed-radix code of each normalised block, [n] int32 its relabelling).

  pybdm's `normalize_key` relabels symbols 0, 1, 2, ... in order of first appearance:
  symbol s becomes rank_s, the number of symbols that appear before it (an absent
  symbol counts as appearing after the block, in symbol order). The code is
  sum_j w_j rank[x_j] = sum_s rank_s W_s, W_s the sum of the place values w_j where
  x_j = s; the relabelling is sum_s rank_s S^s. The pair determines the block
  (x_j = rank^-1(digit j)), so it keys the multiplicities. Unrolled over positions
  and symbols: elementwise over blocks, the fastest form on a CPU."""
  n, length = cols[0].shape[0], len(cols)
  w_L = place_values(length, nsymbols)
  first = [jnp.full((n,), length + s, jnp.int32) for s in range(nsymbols)]
  weight = [jnp.zeros((n,), jnp.int32) for _ in range(nsymbols)]
  for j in reversed(range(length)):
    for s in range(nsymbols):
      hit_N = cols[j] == s
      first[s] = jnp.where(hit_N, j, first[s])
      weight[s] = weight[s] + jnp.where(hit_N, int(w_L[j]), 0)
  code_N = relabel_N = jnp.zeros((n,), jnp.int32)
  for s in range(nsymbols):
    rank_N = sum((first[t] < first[s]).astype(jnp.int32) for t in range(nsymbols) if t != s)
    code_N = code_N + rank_N * weight[s]
    relabel_N = relabel_N + rank_N * nsymbols ** s
  return code_N, relabel_N


def key_span(kind: str, nsymbols: int, length: int) -> int:
  """Number of possible keys of one block: raw codes, or codes x relabellings (S!)."""
  if kind == "raw":
    return nsymbols ** length
  return int(np.prod(radix(length, nsymbols).astype(np.int64))) * math.factorial(nsymbols)


def sort_keys(views: list[jax.Array], *, kind: str, nsymbols: int) -> jax.Array:
  """[n] int32 key of each block of the views, in [0, key_span): the raw code ('raw'
  layout), else code * S! + the relabelling's index (its Lehmer code: a permutation
  of S symbols), computed once over the views' concatenated digit columns."""
  if kind == "raw":
    return jnp.concatenate([raw_keys(v, nsymbols) for v in views])
  cols = [jnp.concatenate(c) for c in zip(*map(columns, views))]
  code_N, rank_N = normal_form(cols, nsymbols)
  rank = [(rank_N // nsymbols ** s) % nsymbols for s in range(nsymbols)]
  lehmer_N = jnp.zeros_like(code_N)
  for s in range(nsymbols):
    later = sum((rank[t] < rank[s]).astype(jnp.int32) for t in range(s + 1, nsymbols))
    lehmer_N = lehmer_N + later * math.factorial(nsymbols - 1 - s)
  return code_N * math.factorial(nsymbols) + lehmer_N


def lookup(keys_N: jax.Array, table: DeviceTable, *, kind: str,
           nsymbols: int) -> tuple[jax.Array, jax.Array]:
  """(CTM value, found) of each key; a missing block -> the table's max + 1."""
  if kind == "raw":
    return table.values[keys_N], table.found[keys_N]
  codes_N = keys_N // math.factorial(nsymbols)
  if kind == "dense":
    return table.values[codes_N], table.found[codes_N]
  at = jnp.minimum(jnp.searchsorted(table.codes, codes_N), table.codes.shape[0] - 1)
  found = table.codes[at] == codes_N
  return jnp.where(found, table.values[at], table.missing), found


def score_sets(views: list[jax.Array], table: DeviceTable, *, kind: str,
               nsymbols: int) -> dict:
  """BDM, block entropy, distinct and missing counts of block sets (block views).

  One sort serves all sets: key = set * key_span + the block's key, and after the sort set i
  still occupies its own (static) stretch of positions. Only the keys are sorted (one
  operand sorts ~15x faster than with payloads on a CPU); each block's CTM value is
  read from its sorted key. Returns each field as [len(sets)]."""
  sizes = [n_blocks(v) for v in views]
  n, n_sets, length = sum(sizes), len(views), n_digits(views[0])
  if n == 0:
    return {f: jnp.zeros(n_sets, jnp.float64 if f in ("bdm", "ent") else jnp.int32)
            for f in FIELDS}
  span = key_span(kind, nsymbols, length)
  dtype = jnp.int64 if n_sets * span >= 2 ** 31 else jnp.int32
  set_N = np.repeat(np.arange(n_sets), sizes)
  keys_N = sort_keys(views, kind=kind, nsymbols=nsymbols).astype(dtype)
  keys_N = jnp.sort(keys_N + jnp.asarray(set_N, dtype) * span)  # set i stays at set_N == i
  new_N = jnp.concatenate([jnp.ones(1, bool), keys_N[1:] != keys_N[:-1]])
  seg_N = jnp.cumsum(new_N) - 1
  count_N = jax.ops.segment_sum(jnp.ones(n, jnp.int32), seg_N, num_segments=n,
                                indices_are_sorted=True)[seg_N].astype(jnp.float64)
  ctm_N, found_N = lookup((keys_N % span).astype(jnp.int32), table, kind=kind, nsymbols=nsymbols)
  miss_N = (~found_N).astype(jnp.int32)
  p_N = count_N / jnp.asarray(np.repeat(sizes, sizes), jnp.float64)
  terms = {"bdm": jnp.where(new_N, ctm_N + jnp.log2(count_N), 0.0),
           "ent": -jnp.where(new_N, p_N * jnp.log2(p_N), 0.0),
           "n_distinct": new_N.astype(jnp.int32),
           "missing_blocks": miss_N,
           "missing_distinct": jnp.where(new_N, miss_N, 0)}
  return {f: jax.ops.segment_sum(t, jnp.asarray(set_N), num_segments=n_sets,
                                 indices_are_sorted=True) for f, t in terms.items()}


# ---------------------------------------------------------------- encodings

def parts(x_HxW: jax.Array, *, levels: int, encoding: str) -> tuple[str, list[jax.Array]]:
  """(table name, block sets as block views) of one symbol matrix in one encoding,
  as `complexity.bdm_matrix`: 2-D, one set per Gray bit-plane; 1-D, one set."""
  if encoding == "2d":
    size = complexity.ctm_table(complexity.TABLE_2D).shape[0]
    return complexity.TABLE_2D, [view_2d(p, size) for p in gray_planes(x_HxW, levels)]
  if encoding == "1d":
    name = complexity.table_1d(levels)
    return name, [view_1d(x_HxW, complexity.ctm_table(name).shape[0])]
  raise ConfigError(f"unknown BDM encoding {encoding!r}; valid: {', '.join(complexity.ENCODINGS)}")


def table_name(levels: int, encoding: str) -> str:
  return complexity.TABLE_2D if encoding == "2d" else complexity.table_1d(levels)


def score_tree(codes: dict, tables: dict, *, levels: int, encodings: tuple) -> dict:
  """{encoding: {field: [block sets]}} of one run-checkpoint: every matrix's block
  sets (its bit-planes in 2-D) in `codes` order (under jit: sorted by name), scored
  with one sort per encoding."""
  out = {}
  for enc in encodings:
    name = table_name(levels, enc)
    kind, table = layout(name), complexity.ctm_table(name)
    sets = [c for x in codes.values() for c in parts(x, levels=levels, encoding=enc)[1]]
    out[enc] = score_sets(sets, tables[name], kind=kind, nsymbols=table.nsymbols)
  return out


@functools.partial(jax.jit, static_argnames=("levels", "encodings"))
def _score_batch(codes, tables, *, levels, encodings):
  return jax.vmap(lambda c: score_tree(c, tables, levels=levels, encodings=encodings))(codes)


def score_batch(codes: dict, *, levels: int = 4, encodings=complexity.ENCODINGS) -> dict:
  """{encoding: {field: host array [B, block sets]}} (float64 / int32), block sets
  in `score_tree`'s order. `codes`: name -> [B, h, w] integer symbols 0..levels-1
  (the batch axis is runs x checkpoints), e.g. `quantise_tree` of stacked parameters."""
  bad = [e for e in encodings if e not in complexity.ENCODINGS]
  if bad:
    raise ConfigError(f"unknown BDM encoding {bad[0]!r}; valid: {', '.join(complexity.ENCODINGS)}")
  with jax.enable_x64(True):
    tables = {n: device_table(n) for n in {table_name(levels, e) for e in encodings}}
    out = _score_batch(dict(codes), tables, levels=levels, encodings=tuple(encodings))
    return jax.device_get(out)


def set_layout(shape: tuple, *, levels: int, encoding: str) -> list[tuple[int, int]]:
  """(blocks, entries) of each block set of one matrix of `shape` (static)."""
  sets = jax.eval_shape(lambda: parts(jnp.zeros(shape, jnp.int8), levels=levels,
                                      encoding=encoding)[1])
  return [(n_blocks(v), n_blocks(v) * n_digits(v)) for v in sets]


def bdm_rows(codes: dict, *, levels: int = 4, encodings=complexity.ENCODINGS) -> list[dict]:
  """One dict per batch element with the keys and values of
  `complexity.bdm_measures(codes[b], levels=levels, encodings=encodings, extras=False)`:
  `bdm/<enc>/{total, per_entry, block_entropy, n_blocks, missing_blocks,
  missing_distinct, dropped_entries, matrix/<name>}`. Sums across bit-planes and
  matrices are taken on the host in `bdm_measures`' order."""
  batch = {np.shape(v)[0] for v in codes.values()}
  if len(batch) != 1:
    raise ConfigError(f"every matrix needs the same leading batch size, got {sorted(batch)}")
  scores = score_batch(codes, levels=levels, encodings=encodings)
  rows = [{} for _ in range(batch.pop())]
  for enc in encodings:
    pre, at, per = f"bdm/{enc}", 0, {}
    for k in sorted(codes):  # jit flattens the dict in key order: the block sets' order
      shape = tuple(np.shape(codes[k])[1:])
      sets = set_layout(shape, levels=levels, encoding=enc)
      per[k] = {f: sum(scores[enc][f][:, i] for i in range(at, at + len(sets))) for f in FIELDS}
      at += len(sets)
      per[k]["n_blocks"] = sum(n for n, _ in sets)
      per[k]["entries"] = sum(e for _, e in sets)
      per[k]["dropped_entries"] = len(sets) * math.prod(shape) - per[k]["entries"]
    per = {k: per[k] for k in codes}  # sums across matrices in the caller's order
    for b, row in enumerate(rows):
      row[f"{pre}/total"] = sum(float(m["bdm"][b]) for m in per.values())
      row[f"{pre}/per_entry"] = row[f"{pre}/total"] / max(1, sum(m["entries"] for m in per.values()))
      row[f"{pre}/block_entropy"] = sum(float(m["ent"][b]) for m in per.values())
      row[f"{pre}/n_blocks"] = sum(m["n_blocks"] for m in per.values())
      for f in ("missing_blocks", "missing_distinct"):
        row[f"{pre}/{f}"] = sum(int(m[f][b]) for m in per.values())
      row[f"{pre}/dropped_entries"] = sum(m["dropped_entries"] for m in per.values())
      row.update({f"{pre}/matrix/{k}": float(m["bdm"][b]) for k, m in per.items()})
  return rows


def lens_rows(codes: dict, *, levels: int = 4, extras: bool = True,
              binary_ctm: bool = True) -> list[dict]:
  """The BDM lens of a batch: one dict per batch element with the keys and values of
  `complexity.bdm_measures(codes[b], levels=levels)` (the measures.csv columns): the
  `bdm/*` keys from `bdm_rows` (on the device), and with `extras` the block-gzip and
  zlib/lzma keys, which stay host-side (`gzip`, `zlib`, `lzma` on each matrix)."""
  rows = bdm_rows(codes, levels=levels)
  if extras:
    for b, row in enumerate(rows):
      row.update(complexity.bdm_measures({k: np.asarray(v[b]) for k, v in codes.items()},
                                         levels=levels, encodings=(), binary_ctm=binary_ctm))
  return rows
