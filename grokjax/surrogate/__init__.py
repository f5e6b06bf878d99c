"""The theory surrogate: a Singular Feature Machine (SFM) with an Occam Gate.

A documented reconstruction of the paper's Section 5 (its equations are not
available): `model` defines the SFM, its gate and its analytic complexity proxy,
`train` runs a seed × op × penalty grid as one vmapped program, `results` writes its
run folder (which `grokjax.figures.surrogate` draws), `characters` holds the group features and the discrete logarithm.
Run it with `python -m experiments.surrogate --out=runs/surrogate`.
"""
