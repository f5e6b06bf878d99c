"""Singular learning theory lens: SGLD-family samplers and the local learning coefficient.

`samplers` (SGLD, RMSProp-SGLD, scale-invariant and Riemannian SGLD as optax
transformations), `llc` (`estimate_llc`: every chain in one compiled program),
`calibration` (step size x localisation sweeps and their traces), `rescaling`
(function-preserving α/β rescalings of the transformer), `invariance` (the LLC on a
rescaling grid; SAMPLER_SETTINGS, each sampler's default ε and γ there), `apply`
(our runs' loss and data; the LLC over training and on one checkpoint's rescaling grid,
from a runio.RunFolder) and `dos` (a second LLC estimator: the Wang–Landau density of
states and its volume scaling).
"""

from grokjax.slt.llc import default_nbeta, estimate_llc, resolve_nbeta, sample_llc
from grokjax.slt.samplers import SAMPLERS

__all__ = ["SAMPLERS", "default_nbeta", "estimate_llc", "resolve_nbeta", "sample_llc"]
