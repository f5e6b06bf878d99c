"""The causal lens: which attention heads carry the computation, and how that changes.

  pairs.py     seeded (clean, corrupted) prompt pairs: same x, different answers
  worlds.py    many edited copies of a forward pass as batched, chunked passes
  patching.py  per-head activation patching, three effects with standard errors
  ablation.py  zero / mean ablation of head sets, cumulative ablation curves
  apply.py     both over checkpoints of a sweep's runs (vmapped over runs)

(`grokjax.figures.causal` draws the Figure-2 grids and ablation curves from the tables.)

>>> import jax
>>> from grokjax.config import MODEL_PRESETS
>>> from grokjax.model import init_params
>>> cfg = MODEL_PRESETS["tiny"]
>>> pairs = sample_pairs("sub", 97, 8, key=jax.random.key(0))
>>> patch_heads(init_params(cfg, jax.random.key(1)), cfg, pairs)["logit_diff/se"].shape
(2, 2)
"""

from grokjax.causal.ablation import ablate, ablation_curves, head_means
from grokjax.causal.pairs import Pairs, sample_pairs
from grokjax.causal.patching import patch_effects, patch_heads, patching_fn

__all__ = ["Pairs", "sample_pairs", "patch_effects", "patch_heads", "patching_fn", "ablate",
           "ablation_curves", "head_means"]
