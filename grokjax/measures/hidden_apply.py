"""The hidden-state lens: PCA (and t-SNE) maps of embeddings and hidden states over training.

Per run of the first seed and per chosen step, two kinds of point cloud (see
grokjax.measures.hidden) are mapped to the plane:

  tok_embed   the p number-token embedding rows (row n is the number n)
  blocks.{l}  the residual stream at the answer position after block l, one point per
              example (all p(p-1), or a seeded subset of `n_examples`)

(The stream right after the embedding is left out: the answer position holds the
same '=' token in every example, so there it is one point.) Every cloud gets its PCA
coordinates and the variance share of its top two axes; where `tsne_examples` > 0 and
scikit-learn is installed, also a seeded t-SNE map (the hidden states on a seeded
subset of `tsne_examples` of the PCA examples), of every cloud (`tsne_sites` 'all') or
of the embedding and the last block only ('ends': t-SNE costs ~9 s of one CPU core per
1,000 points, PCA of all 9,409 examples well under one). Which method ran is recorded:
the file says 'not installed' where t-SNE was asked for but scikit-learn is absent.

One npz file, `hidden.npz`, written atomically:

  steps [S], runs [R], sites [K]   what it holds
  format, seed, n_examples (-1: all), tsne_examples, tsne_sites, perplexity   the computation
  tsne_method []                   how the 'tsne|' maps were made, or why there are none
  'x|op', 'answer|op' [N]          labels of the PCA examples of each op
  'tsne_index|op' [M]              the t-SNE subset, as indices into those examples
  'tsne_perplexity|site' []        the perplexity used (at most (points - 1) / 3)
  'pca|site|run|step' [N, 2], 'explained|site|run|step' [2], 'tsne|site|run|step' [M, 2]

>>> # folder = runio.RunFolder.open("runs/demo")
>>> # save(folder.file(FILE), compute(folder, HiddenOptions(steps=(100, 900))))
>>> # load(folder.file(FILE)).get("explained", site="tok_embed", run=0, step=900)
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import importlib.util
import os
import pathlib
from typing import Callable, Sequence

import numpy as np

from grokjax import runio
from grokjax.errors import ConfigError

FILE = "hidden.npz"
FORMAT = 1  # bumped when the arrays change, so old files are recomputed
EMBEDDING = "tok_embed"
HEAD = ("steps", "runs", "sites", "format", "seed", "n_examples", "tsne_examples", "tsne_sites",
        "perplexity", "tsne_method")
TSNE_SITES = ("all", "ends")


@dataclasses.dataclass(frozen=True)
class HiddenOptions:
  """What the lens computes: at which steps, on how many examples, with or without t-SNE."""

  steps: tuple[int, ...]
  n_examples: int | None = None  # PCA examples per op (None: all p(p-1))
  tsne_examples: int = 1000  # t-SNE's seeded subset of the PCA examples (0: no t-SNE)
  tsne_sites: str = "all"  # t-SNE of every cloud, or 'ends': the embedding and the last block
  perplexity: float = 30.0
  seed: int = 0


def tsne_method(opts: HiddenOptions) -> str:
  """How `compute` makes the t-SNE maps now, or why it makes none."""
  if opts.tsne_examples <= 0:
    return "off (tsne_examples = 0)"
  if importlib.util.find_spec("sklearn") is None:
    return "not installed (scikit-learn is absent: pip install -e .[tsne])"
  return (f"sklearn.manifold.TSNE {importlib.metadata.version('scikit-learn')} "
          f"(Barnes-Hut, init pca, random_state {opts.seed})")


def sites(n_layers: int) -> tuple[str, ...]:
  return (EMBEDDING, *(f"blocks.{l}" for l in range(n_layers)))


def tsne_sites(names: Sequence[str], which: str) -> tuple[str, ...]:
  """The clouds t-SNE maps: all of `names`, or ('ends') the first and the last."""
  if which not in TSNE_SITES:
    raise ConfigError(f"tsne_sites must be one of {', '.join(TSNE_SITES)}, got {which!r}")
  return tuple(names) if which == "all" else (names[0], names[-1])


def runs_of(cfg) -> list[int]:
  """The runs the lens maps: the first seed's (one per op x weight decay), as snapshots."""
  return [i for i, s in enumerate(cfg.runs) if s.seed == cfg.seeds[0]]


def map_fn(cfg, op: str, tokens_BxT):
  """jit of params -> PCA coords and shares per site, and the raw points of every site."""
  import jax
  import jax.numpy as jnp

  from grokjax.measures import hidden

  mc, p = cfg.model_config, cfg.p
  tokens = jnp.asarray(tokens_BxT)

  def one(params):
    states = hidden.answer_states(mc, params, tokens)
    points = {EMBEDDING: params["tok_embed"]["embedding"][:p].astype(jnp.float32),
              **{s: v for s, v in states.items() if s != "embed"}}
    return {s: {**hidden.pca(v), "points": v} for s, v in points.items()}

  return jax.jit(one)


def _labels(cfg, ops, opts: HiddenOptions) -> dict[str, np.ndarray]:
  from grokjax.measures import hidden

  out = {}
  for op in ops:
    inputs, xs, answers = hidden.examples(op, cfg.p, opts.n_examples, seed=opts.seed)
    out[f"tokens|{op}"], out[f"x|{op}"], out[f"answer|{op}"] = inputs, xs, answers
    if opts.tsne_examples > 0:
      m = min(opts.tsne_examples, len(inputs))
      rng = np.random.default_rng(opts.seed)
      out[f"tsne_index|{op}"] = np.sort(rng.choice(len(inputs), m, replace=False))
  return out


def _perplexity(opts: HiddenOptions, n_points: int) -> float:
  # sklearn needs perplexity < points; (n - 1) / 3 is the usual bound (p = 23 has 23 rows)
  return float(min(opts.perplexity, (n_points - 1) / 3))


def compute(folder, opts: HiddenOptions, *,
            write: Callable[[str], None] = print) -> dict[str, np.ndarray]:
  """The maps of the first seed's runs of a RunFolder at `opts.steps` (see the module doc)."""
  import jax

  from grokjax.measures import hidden

  cfg = folder.cfg
  folder.choose_steps(steps=opts.steps)
  if opts.perplexity < 1:
    raise ConfigError(f"perplexity must be at least 1, got {opts.perplexity}")
  runs = runs_of(cfg)
  ops = list(dict.fromkeys(cfg.runs[i].op for i in runs))
  labels = _labels(cfg, ops, opts)
  fns = {op: map_fn(cfg, op, labels[f"tokens|{op}"]) for op in ops}
  method = tsne_method(opts)
  with_tsne = method.startswith("sklearn")
  names = sites(cfg.model_config.n_layers)
  mapped = tsne_sites(names, opts.tsne_sites)
  arrays = {"steps": np.asarray(opts.steps), "runs": np.asarray(runs), "sites": np.asarray(names),
            "format": np.asarray(FORMAT), "seed": np.asarray(opts.seed),
            "n_examples": np.asarray(-1 if opts.n_examples is None else opts.n_examples),
            "tsne_examples": np.asarray(opts.tsne_examples),
            "tsne_sites": np.asarray(opts.tsne_sites),
            "perplexity": np.asarray(opts.perplexity), "tsne_method": np.asarray(method)}
  arrays.update({k: v for k, v in labels.items() if not k.startswith("tokens|")})
  for step in opts.steps:
    params = folder.params([step], runs)
    for k, r in enumerate(runs):
      op = cfg.runs[r].op
      res = jax.device_get(fns[op](jax.tree.map(lambda a: a[0, k], params)))
      for site, m in res.items():
        arrays[f"pca|{site}|{r}|{step}"] = np.asarray(m["coords"], np.float32)
        arrays[f"explained|{site}|{r}|{step}"] = np.asarray(m["explained"], np.float32)
        if with_tsne and site in mapped:
          pts = m["points"] if site == EMBEDDING else m["points"][labels[f"tsne_index|{op}"]]
          perplexity = _perplexity(opts, len(pts))
          arrays[f"tsne_perplexity|{site}"] = np.asarray(perplexity)
          arrays[f"tsne|{site}|{r}|{step}"] = hidden.tsne(
              pts, seed=opts.seed, perplexity=perplexity).astype(np.float32)
    write(f"hidden: step {step} ({len(runs)} runs, {len(names)} sites, t-SNE "
          f"{'on' if with_tsne else 'off'})")
  return arrays


def save(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
  """Writes the arrays atomically (runio.atomic_write), so a reader never sees half."""
  with runio.atomic_write(path, "wb") as f:
    np.savez_compressed(f, **arrays)


@dataclasses.dataclass(frozen=True)
class Hidden:
  """A hidden.npz file read back: its header and its arrays."""

  head: dict
  arrays: dict[str, np.ndarray]

  def get(self, kind: str, *, site: str, run: int, step: int) -> np.ndarray | None:
    """One map ('pca', 'explained', 'tsne'), or None where the file has none."""
    return self.arrays.get(f"{kind}|{site}|{run}|{step}")

  def current(self, opts: HiddenOptions, runs: Sequence[int]) -> bool:
    """Whether this file is what `compute` would write now for these options and runs
    (a file made without scikit-learn is stale once it is installed)."""
    h = self.head
    want = {"format": FORMAT, "seed": opts.seed, "tsne_examples": opts.tsne_examples,
            "tsne_sites": opts.tsne_sites,
            "n_examples": -1 if opts.n_examples is None else opts.n_examples,
            "perplexity": opts.perplexity, "tsne_method": tsne_method(opts)}
    return (all(h.get(k) == v for k, v in want.items())
            and set(h["steps"]) == set(opts.steps) and list(h["runs"]) == list(runs))


def load(path: str | os.PathLike) -> Hidden | None:
  """The maps in `path`, or None where the file does not exist."""
  path = pathlib.Path(path)
  if not path.is_file():
    return None
  arrays = runio.read_npz(path, HEAD)
  head = {k: arrays.pop(k).tolist() for k in HEAD}
  return Hidden(head=head, arrays=arrays)
