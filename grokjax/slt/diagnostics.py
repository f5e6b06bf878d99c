"""Convergence diagnostics of LLC chains, traceable so that they run inside the sampler's jit.

Every function takes traces of the excess e_ct = nβ·(L_m(w_t) − L_n(w*)) (chains c,
draws t) and a mask of the chains to use (the non-diverged ones), and returns scalars:

  trend_z         the trend of the chain-mean excess over the second half of the kept
                  draws, in units of its standard error (a chain still rising towards its
                  stationary level, as a too-small step leaves it, has a large z).
  split_rhat      Gelman–Rubin's split-R̂ (Gelman et al., "Bayesian Data Analysis", 3rd
                  ed., §11.4): each chain's kept draws cut in two halves, R̂ = sqrt(var⁺/W)
                  with W the mean within-half variance and var⁺ = (N−1)/N·W + B/N;
                  ≈ 1 when every half samples the same distribution.
  robust_spread   the median over chains of each chain's MAD·1.4826 (a standard deviation
                  that one blown-up chain, or a blow-up late in a chain, does not inflate).
  mala_log_accept the log Metropolis–Hastings acceptance ratio of a Langevin proposal
                  (the Metropolis-adjusted Langevin algorithm, MALA; Roberts & Tweedie 1996),
                  from the potential and its gradient at both ends of the step.

`diagnose` gathers them into the diag/... entries of an LLC result and sets the bits of
`FLAGS` from a thresholds table (`grokjax.slt.llc.DIAG_THRESHOLDS`); `describe` spells a
bitmask out.

Acceptance (`grokjax.slt.llc.ChainSpec.acceptance`): the mean Metropolis–Hastings
acceptance probability of the SGLD proposals, as MALA would compute it, for
U = nβ·L_m(w) + (γ/2)·‖w − w*‖² (target ≈ 0.9; a low value means the step is too large
for the local curvature, so the discretisation bias is large). It needs U and ∇U at the
proposal on the minibatch that made it. "next" reuses the next draw's loss and gradient:
no extra gradient, two parameter-sized arrays in the carry and two dot products per
draw; exact with full batches, but with minibatches it compares U on two different
minibatches (as devinterp's estimate does), and the minibatch noise in nβ·(L_m − L_m')
drags it down (0.60 against 0.999 on the regular test model with b = 100). "same_batch"
evaluates the proposal on the draw's own minibatch: exact, one extra forward and
backward pass per draw. "auto" (the default) is "next" with full batches and
"same_batch" on every 8th draw with minibatches (`llc.ACCEPT_EVERY`: +1/8 of the
sampling cost). "off" skips it. The proposal needs a fixed metric: `sgld` (G = I) and
`scale_invariant` (G = m = s_T(w*) per tensor, `samplers.constant_metric`; U's localisation
then reads ‖w_T − w*_T‖²/m_T). For RMSProp-SGLD (G adapts in burn-in) and the Riemannian
sampler (G moves with w) `diag/accept` is NaN and not checked.

Why the acceptance fails below 0.8 rather than 0.5: on the d = 4 regular test model (full
batch) acceptances 0.999 / 0.97 / 0.90 / 0.77 / 0.59 came with λ̂ +0 / +6 / +21 / +55 /
+280 % above d/2. In more dimensions the acceptance falls faster for the same
per-coordinate bias, so the same threshold is stricter there.

>>> import jax, jax.numpy as jnp
>>> x = jax.random.normal(jax.random.key(0), (4, 1000))
>>> bool(abs(split_rhat(x, jnp.ones(4, bool)) - 1.0) < 0.01)
True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def _masked_mean(x: Array, mask: Array, axis=0) -> Array:
  w = mask.astype(x.dtype)
  return jnp.sum(jnp.where(mask, x, 0.0), axis=axis) / jnp.sum(w, axis=axis)


def _block_regression(y_B: Array) -> tuple[Array, Array]:
  """(slope per block, its standard error) of y against the block index, by least squares."""
  b = y_B.shape[-1]
  x = jnp.arange(b, dtype=y_B.dtype) - (b - 1) / 2
  sxx = jnp.sum(x * x)
  slope = jnp.sum(x * (y_B - jnp.mean(y_B, axis=-1, keepdims=True)), axis=-1) / sxx
  resid = y_B - jnp.mean(y_B, axis=-1, keepdims=True) - slope[..., None] * x
  se = jnp.sqrt(jnp.sum(resid * resid, axis=-1) / (b - 2) / sxx)
  return slope, se


def trend_z(excess_CxK: Array, mask_C: Array, *, num_blocks: int = 10) -> tuple[Array, Array]:
  """(slope per draw, slope / its standard error) of the chain-mean trace's second half.

  The second half of the K kept draws is cut into `num_blocks` blocks; the block means
  of the chain-mean trace are regressed on the block index. Block means are nearly
  independent when a block is longer than the chains' autocorrelation time; when it is
  not, the residual error underestimates the noise, so the standard error is the larger
  of the residual one and the spread of the per-chain slopes over √(chains) (independent
  chains, so that one is honest whatever the autocorrelation). NaN with < 3 blocks.
  """
  half = excess_CxK[:, excess_CxK.shape[1] // 2:]
  blocks = min(num_blocks, half.shape[1])
  if blocks < 3:
    nan = jnp.full((), jnp.nan, half.dtype)
    return nan, nan
  size = half.shape[1] // blocks
  per_chain_CxB = jnp.mean(half[:, : blocks * size].reshape(half.shape[0], blocks, size), -1)
  slope, se = _block_regression(_masked_mean(per_chain_CxB, mask_C[:, None]))
  chain_slope, _ = _block_regression(jnp.where(mask_C[:, None], per_chain_CxB, 0.0))
  n = jnp.sum(mask_C)
  between = jnp.sqrt(jnp.sum(jnp.where(mask_C, (chain_slope - slope) ** 2, 0.0))
                     / jnp.maximum(n - 1, 1) / n)
  se = jnp.where(n > 1, jnp.maximum(se, between), se)
  z = jnp.where(se > 0, slope / jnp.where(se > 0, se, 1.0), jnp.where(slope == 0, 0.0, jnp.inf))
  return slope / size, z


def split_rhat(x_CxK: Array, mask_C: Array) -> Array:
  """Split-R̂ of the kept draws x [chains, K] over the chains in mask (module docstring)."""
  n = x_CxK.shape[1] // 2
  if n < 2:
    return jnp.full((), jnp.nan, x_CxK.dtype)
  seq_SxN = jnp.concatenate([x_CxK[:, :n], x_CxK[:, x_CxK.shape[1] - n:]])
  mask_S = jnp.concatenate([mask_C, mask_C])
  means = jnp.mean(seq_SxN, axis=1)
  within = _masked_mean(jnp.var(seq_SxN, axis=1, ddof=1), mask_S)
  grand = _masked_mean(means, mask_S)
  m = jnp.sum(mask_S)
  between_over_n = jnp.sum(jnp.where(mask_S, (means - grand) ** 2, 0.0)) / (m - 1)
  var_plus = (n - 1) / n * within + between_over_n
  return jnp.sqrt(var_plus / within)


def robust_spread(x_CxT: Array) -> Array:
  """Median over chains of 1.4826·MAD_t(x_ct); non-finite draws and chains are ignored."""
  x = jnp.where(jnp.isfinite(x_CxT), x_CxT, jnp.nan)
  med = jnp.nanmedian(x, axis=1, keepdims=True)
  mad = 1.4826 * jnp.nanmedian(jnp.abs(x - med), axis=1)
  mad = jnp.where(jnp.all(jnp.isfinite(x_CxT), axis=1), mad, jnp.nan)
  return jnp.nanmedian(mad)


def _dot(a, b) -> Array:
  return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def mala_log_accept(w0, u0, grad_u0, w1, u1, grad_u1, step_size, precond=None) -> Array:
  """log of the MH ratio of the Langevin proposal w1 ~ N(w0 − (ε/2)·G∇U(w0), ε·G).

  log α = U(w0) − U(w1) + log q(w0 | w1) − log q(w1 | w0), with
  log q(b | a) = −(b − a + (ε/2)·G∇U(a))ᵀG⁻¹(…) / (2ε). Expanded (Δ = w1 − w0) to
      U0 − U1 + ½·Δ·(∇U0 + ∇U1) + (ε/8)·(∇U0 − ∇U1)ᵀG(∇U0 + ∇U1),
  which has no difference of the two large squared norms (float32 keeps its digits).
  `precond`: a fixed G as a tree of per-leaf factors (None: G = I, plain SGLD); a G that
  moves with w has no such ratio. The acceptance probability is min(1, exp(log α)).
  """
  delta = jax.tree.map(jnp.subtract, w1, w0)
  total = jax.tree.map(jnp.add, grad_u0, grad_u1)
  diff = jax.tree.map(jnp.subtract, grad_u0, grad_u1)
  if precond is not None:
    diff = jax.tree.map(jnp.multiply, diff, precond)
  return u0 - u1 + 0.5 * _dot(delta, total) + step_size / 8 * _dot(diff, total)


# Bits of diag/reasons: (name, fails diag/ok, what it means); the thresholds are those of
# the table passed to `diagnose` (grokjax.slt.llc.DIAG_THRESHOLDS).
FLAGS = {
    1: ("trend", True, "not stationary: the loss still trends (|slope z| too large)"),
    2: ("rhat", True, "chains disagree (split-R̂ too large)"),
    4: ("accept", True, "step too large: MALA acceptance too low"),
    8: ("not_minimum", True, "not a minimum: most draws fall below L_n(w*)"),
    16: ("saturated", True, "saturated: the chains sample near-chance models"),
    32: ("diverged", True, "too many chains diverged"),
    64: ("accept_warn", False, "MALA acceptance below its target"),
}
FAIL_MASK = sum(bit for bit, (_, fails, _) in FLAGS.items() if fails)


def describe(reasons) -> str:
  """The flags of a diag/reasons bitmask in words ('ok' when none is set)."""
  reasons = int(reasons)
  words = [text for bit, (_, _, text) in FLAGS.items() if reasons & bit]
  return "; ".join(words) if words else "ok"


def flag_names(reasons) -> list[str]:
  """The short names of the flags set in a diag/reasons bitmask."""
  return [name for bit, (name, _, _) in FLAGS.items() if int(reasons) & bit]


def _flags(d: dict[str, Array], th: dict) -> Array:
  """The diag/reasons bitmask; NaN diagnostics (not computed) set no flag."""
  tests = {1: jnp.abs(d["diag/slope_z"]) >= th["slope_z"], 2: d["diag/rhat"] >= th["rhat"],
           4: d["diag/accept"] < th["accept_fail"], 8: d["diag/not_minimum"],
           16: d["diag/saturated"], 32: d["diag/diverged_frac"] >= th["diverged_frac"],
           64: d["diag/accept"] < th["accept_warn"]}
  return sum(jnp.where(test, bit, 0) for bit, test in tests.items()).astype(jnp.int32)


def diagnose(losses: Array, log_accept: Array, init_loss: Array, nbeta, ok: Array, *,
             num_burnin: int, chance_loss=jnp.nan, thresholds: dict) -> dict[str, Array]:
  """The diag/... entries from traces [chains, draws] and the healthy-chain mask `ok`.

  `thresholds`: `grokjax.slt.llc.DIAG_THRESHOLDS` or a table with its keys.
  """
  kept = nbeta * (losses[:, num_burnin:] - init_loss)
  slope, z = trend_z(kept, ok)
  n_ok = jnp.maximum(jnp.sum(ok), 1)
  below = jnp.sum(jnp.where(ok[:, None], kept < 0, False)) / (n_ok * kept.shape[1])
  log_acc = log_accept[:, num_burnin:]
  use = ok[:, None] & ~jnp.isnan(log_acc)
  acc = jnp.exp(jnp.minimum(jnp.where(use, log_acc, 0.0), 0.0))  # min(1, α)
  accept = jnp.sum(jnp.where(use, acc, 0.0)) / jnp.sum(use.astype(acc.dtype))  # NaN: none
  sampled = init_loss + jnp.sum(jnp.where(ok, jnp.mean(kept, axis=1), 0.0)) / n_ok / nbeta
  sampled = jnp.where(jnp.any(ok), sampled, jnp.nan)
  level = thresholds["saturation"] * chance_loss
  d = {"diag/slope": slope, "diag/slope_z": z, "diag/rhat": split_rhat(kept, ok),
       "diag/below_init": jnp.where(jnp.any(ok), below, jnp.nan), "diag/accept": accept,
       "diag/sampled_loss": sampled, "diag/saturated": (sampled >= level) & (level > init_loss),
       "diag/diverged_frac": 1.0 - jnp.mean(ok.astype(jnp.float32))}
  # Most draws below L_n(w*) *and* their mean below it: a minibatch's loss is skewed (its
  # median lies under its mean), so at a minimum with small batches more than half the
  # draws can fall below L_n(w*) while their mean, an unbiased estimate, stays above.
  d["diag/not_minimum"] = (d["diag/below_init"] > thresholds["below_init"]) & (sampled < init_loss)
  d["diag/reasons"] = _flags(d, thresholds)
  d["diag/ok"] = (d["diag/reasons"] & FAIL_MASK) == 0
  return d
