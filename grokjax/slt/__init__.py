"""Singular learning theory lens: SGLD-family samplers and the local learning coefficient.

`samplers` (optax transformations), `llc` (estimate_llc), `calibration` (step size x
localisation sweeps), `rescaling` (function-preserving rescalings), `invariance` (the
LLC on a rescaling grid) and `apply` (the LLC over training, from a run folder).
"""

from grokjax.slt.llc import default_nbeta, estimate_llc, sample_llc
from grokjax.slt.samplers import SAMPLERS

__all__ = ["SAMPLERS", "default_nbeta", "estimate_llc", "sample_llc"]
