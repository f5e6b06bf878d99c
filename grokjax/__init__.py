"""grokjax: grokking sweeps and the lenses that read them, in JAX."""

__version__ = "0.1.0"
