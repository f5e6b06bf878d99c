"""The Singular Feature Machine (SFM) with an Occam Gate: our reconstruction.

The paper's Section 5 describes a surrogate with a free-energy-like objective and a
sparsity-inducing "Occam Gate"; its equations are not available. Everything below
is grokjax's: it keeps the paper's description (two feature families that both fit the
data, singular weights, a gate whose penalty is the complexity term of
F = n·L_n + λ·log n, a learning coefficient that falls from the lookup value to the
group value) and states each choice made where the text was unavailable.

Model. For an example e = (x, y) and a class z ∈ Z_p the logit is

    f(e)[z] = f_0(e)[z] + Σ_{i ∈ train} w_i φ_i(e, z) + Σ_{k < p−1} w_k ψ_k(e, z),
    w_j = g_j · b(u_j) · b(v_j),   g_j = clip(γ_j, 0, 1),   b(u) = c·tanh(u/c)

* ψ_k: the group features, real characters of x ∘ y − z over Z_p (add/sub) or over
  Z_{p−1} in the discrete-log basis (mul/div), see `characters`.
* φ_i: one memorising feature per training pair e_i with answer z_i,
  φ_i(e, z) = [z = z_i]·([e = e_i] + ε[i ∈ P(e)]), where P(e) is a fixed random set
  of L other features that pair e collides with (`crosstalk_load`, default 1). On its
  own pair φ_i is the lookup entry (value 1); on the pairs that read it, it leaks ε:
  the crosstalk of a table stored in finite capacity (a memorising model votes for
  the answers of colliding pairs on unseen ones).
* f_0: a frozen random table, N(0, σ_0²) per logit (`init_noise`, default 1): the
  function a network computes at initialisation. It is not a parameter, so it changes
  no learning coefficient. Choice, for f_0 and the crosstalk: with neither, every
  logit starts at ~0, a strict argmax is decided by the sign of tiny weights, and a
  group weight of the right sign — however small — classifies every test pair (test
  accuracy 1.0 at step 2, train accuracy 0.49 at step 0; measured at p = 31). Either
  one alone keeps a memorising model at chance on test pairs until the group part
  outgrows it (measured: same generalisation step with ε = 0 or σ_0 = 0).
* u, v: the two factors make every weight a product (singular: the fibre
  {b(u)·b(v) = w} is a curve, and w = 0 is a normal crossing); g is the gate. b is
  ≈ the identity near 0 and saturates at ±c (c² = `weight_bound`, default 20), so a
  feature adds at most g·c² to a logit. Choice: with unbounded factors the gate price
  can be dodged (g shrinks while u·v grows at no cost; the fast memorising factors do
  exactly that and their gates never close), and the cross-entropy drives the
  memorising loss to 0, which starves the group features of gradient.

Occam Gate (choice: an L1-penalised box gate). The gate parameter γ_j is kept ≤ 1 by
projection after each step; the gate is open while γ_j > 0 and closed for good once
γ_j ≤ 0 (there the gate, its gradient and its penalty are all zero, so a closed
feature is pruned, not merely small). The penalty is

    Ω(γ) = λ · Σ_j g_j,   λ = η · log n / (2n)   (η: penalty strength, 1 = Watanabe)

so n·(L_n + Ω) = n·L_n + η·(log n / 2)·Σ_j g_j: on the box [0, 1] the L1 norm is the
convex envelope of the count of open gates, so this is the tightest convex relaxation
of the free energy's complexity term λ_A·log n with λ_A = |A|/2 (below). Ω = 0
exactly when every gate is closed. Why not a hard-concrete (L0) gate: its penalty,
the probability that a gate is open, is positive for every finite parameter (so
"penalty zero iff closed" fails), it adds sampling noise to the dynamics, and its
gates are never exactly closed, which blurs the active set.

Complexity proxy (derivation). Let A = {j : γ_j > 0} be the open gates. Near a point
θ* where the active features are linearly independent functions of (e, z) modulo
per-example constants (which a softmax cannot see) and θ* is a critical point of L_n in
the factors,

    K(θ) = L_n(θ) − L_n(θ*) = (w_A − w_A*)ᵀ H (w_A − w_A*) + o(‖w_A − w_A*‖²),   H ≻ 0

because the cross-entropy is strictly convex in the logits modulo those constants.
Closed features do not enter K at all (their γ lies in the flat region γ < 0), so they
contribute 0. Each active weight w_j = g_j b(u_j) b(v_j) is a product of three
parameters: where w_j ≠ 0 the map is a submersion and K is quadratic in one
coordinate normal to its fibre; where w_j = 0 it is the normal crossing (u v)²
(b is a diffeomorphism near 0), whose real log canonical threshold is also 1/2.
Real log canonical thresholds of functions of disjoint variables add, so the
learning coefficient of the active set is

    λ_A = |A| / 2 = (#open memorising gates + #open group gates) / 2,

whatever the sizes of the weights. All gates open gives (n + p − 1)/2 (n = number of
training pairs); a lookup over all p(p−1) pairs would be ≈ p²/2 (the paper's lookup
value); the full group family is (p − 1)/2 ≈ p/2. `complexity/llc` is λ_A,
`complexity/gate_mass` its relaxation Σ g / 2, and `free_energy` = n·L_n + λ_A·log n.
The tests check λ_A against the rank of the Jacobian of the centred logits, and
(slow) against `grokjax.slt.estimate_llc` at a realisable planted point. Caveats: a
cross-entropy fit never reaches an exact critical point (the logits keep growing
toward the bound), and a gate that sits exactly at γ = 1 or 0 is a boundary point
where the exponent can differ; λ_A is the proxy the derivation gives for the active
set, not an estimate at such points.

>>> import jax
>>> data = build_data("add", 7, seed=0, penalty=1.0)
>>> params = init_params(data, key=jax.random.key(0))
>>> float(complexity(params)["complexity/llc"])   # (21 training pairs + 6 characters) / 2
13.5
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from grokjax import tasks
from grokjax.errors import ConfigError
from grokjax.surrogate import characters

Array = jax.Array


class SFMData(NamedTuple):
  """One run's task, split, features and penalty, as arrays (stackable over runs)."""

  basis: Array  # [K, p + 1] float32 value of group feature k at each slot
  key_slots: Array  # [p, p] int32 slot of (row key, class), see characters.key_slots
  row_key: Array  # [N] int32
  targets: Array  # [N] int32
  is_train: Array  # [N] bool
  train_rows: Array  # [n] int32 the training pairs in feature order (a random permutation)
  partners: Array  # [N, L] int32 the memorising features that leak onto each pair
  init_logits: Array  # [N, p] float32 f_0, the frozen random function at initialisation
  crosstalk: Array  # [] float32 ε
  weight_bound: Array  # [] float32 W: |w_j| < g_j·W (c = √W bounds each factor)
  penalty: Array  # [] float32 λ = η log n / (2n), the price of one open gate
  group_sign: Array  # [] int32 +1 for add/mul, −1 for sub/div
  log_basis: Array  # [] bool True for mul/div (characters in the discrete-log basis)


def penalty_price(eta: float, n: int) -> float:
  """λ = η · log n / (2n): the per-example price of one open gate."""
  return eta * math.log(n) / (2 * n)


def split_for_seed(seed: int, p: int, train_frac: float) -> np.ndarray:
  """[N] bool training mask; the same for every op of a seed (uses tasks.split)."""
  return np.asarray(tasks.split(jax.random.key(seed), p, train_frac).is_train)


def build_data(op: str, p: int, *, seed: int, penalty: float, train_frac: float = 0.5,
               crosstalk: float = 0.25, crosstalk_load: int = 1,
               init_noise: float = 1.0, weight_bound: float = 20.0) -> SFMData:
  """The arrays of one run. `penalty` is η; the seed fixes the split and the crosstalk.

  Memorising feature i belongs to training pair train_rows[i] (a random order). Each
  pair reads L = crosstalk_load other features besides its own: training pair i reads
  features i − 1, ..., i − L (mod n), a test pair L random ones. A ring in a random
  order keeps the hot path a few rolls, free of gathers and scatters.
  """
  characters.check_group_op(op, p)
  if not 0.0 <= crosstalk < 1.0:
    raise ConfigError(f"crosstalk must lie in [0, 1), got {crosstalk}")
  if penalty < 0 or not math.isfinite(penalty):
    raise ConfigError(f"penalty must be finite and >= 0, got {penalty}")
  if int(crosstalk_load) != crosstalk_load or crosstalk_load < 1:
    raise ConfigError(f"crosstalk_load must be a positive integer, got {crosstalk_load}")
  if not (weight_bound > 0 and math.isfinite(weight_bound)):
    raise ConfigError(f"weight_bound must be positive and finite, got {weight_bound}")
  if not (init_noise >= 0 and math.isfinite(init_noise)):
    raise ConfigError(f"init_noise must be finite and >= 0, got {init_noise}")
  _, targets = tasks.make_task(op, p)
  is_train = split_for_seed(seed, p, train_frac)
  n = int(is_train.sum())
  if n <= crosstalk_load or is_train.all():
    raise ConfigError(f"train_frac={train_frac} leaves too few training or no test pairs at "
                      f"p={p}")
  rng = np.random.default_rng([seed, 2])  # numpy: no compilation per shape
  train_rows = rng.permutation(np.flatnonzero(is_train)).astype(np.int32)
  partners = rng.integers(0, n, (len(targets), crosstalk_load)).astype(np.int32)
  partners[train_rows] = (np.arange(n)[:, None] - np.arange(1, crosstalk_load + 1)) % n
  f0 = init_noise * rng.standard_normal((len(targets), p))
  return SFMData(
      basis=jnp.asarray(characters.character_basis(op, p)),
      key_slots=jnp.asarray(characters.key_slots(op, p)),
      row_key=jnp.asarray(characters.row_keys(op, p)),
      targets=jnp.asarray(targets), is_train=jnp.asarray(is_train),
      train_rows=jnp.asarray(train_rows), partners=jnp.asarray(partners),
      init_logits=jnp.asarray(f0, jnp.float32),
      crosstalk=jnp.float32(crosstalk), weight_bound=jnp.float32(weight_bound),
      penalty=jnp.float32(penalty_price(penalty, n)),
      group_sign=jnp.int32(characters.GROUPS[op][1]),
      log_basis=jnp.bool_(characters.GROUPS[op][0] == "dlog"))


def init_params(data: SFMData, *, key: Array, mem_init: float = 0.1,
                group_init: float = 1e-3) -> dict:
  """Small random factors (N(0, init²)), every gate open (γ = 1)."""
  n, k = data.train_rows.shape[0], data.basis.shape[0]
  keys = jax.random.split(key, 4)
  family = lambda size, scale, ka, kb: {
      "u": scale * jax.random.normal(ka, (size,)), "v": scale * jax.random.normal(kb, (size,)),
      "gate": jnp.ones((size,))}
  return {"mem": family(n, mem_init, keys[0], keys[1]),
          "group": family(k, group_init, keys[2], keys[3])}


def gate_values(gamma: Array) -> Array:
  """g = clip(γ, 0, 1): open for γ > 0, closed (and flat) for γ ≤ 0."""
  return jnp.clip(gamma, 0.0, 1.0)


def bounded(u: Array, bound: Array) -> Array:
  """c·tanh(u/c) with c = √bound: ≈ u near 0, saturating at ±c."""
  c = jnp.sqrt(bound)
  return c * jnp.tanh(u / c)


def feature_weights(params, data: SFMData) -> tuple[Array, Array]:
  """(w_mem [n], w_group [K]) with w = g·b(u)·b(v), b = bounded."""
  w = lambda f: (gate_values(f["gate"]) * bounded(f["u"], data.weight_bound)
                 * bounded(f["v"], data.weight_bound))
  return w(params["mem"]), w(params["group"])


def _own_lookup(w_mem: Array, data: SFMData) -> Array:
  """[n, p]: each feature's weight on its own pair's answer (feature order)."""
  p = data.key_slots.shape[0]
  return jax.nn.one_hot(data.targets[data.train_rows], p) * w_mem[:, None]


def logits(params, data: SFMData, rows: Array) -> Array:
  """[len(rows), p] logits of the given example rows."""
  w_mem, w_group = feature_weights(params, data)
  table = (w_group @ data.basis)[data.key_slots]  # [p, p] group logits by (row key, class)
  own = _own_lookup(w_mem, data)
  by_row = jnp.zeros((data.targets.shape[0], own.shape[1]), own.dtype).at[data.train_rows].set(own)
  leak = jnp.sum(own[data.partners[rows]], axis=1)
  return data.init_logits[rows] + table[data.row_key[rows]] + by_row[rows] + data.crosstalk * leak


def train_logits(params, data: SFMData) -> Array:
  """[n, p] logits of the training pairs in feature order: logits(params, data,
  data.train_rows) with the crosstalk as rolls (no gather, no scatter: the hot path)."""
  w_mem, w_group = feature_weights(params, data)
  table = (w_group @ data.basis)[data.key_slots]
  own = _own_lookup(w_mem, data)
  leak = sum(jnp.roll(own, l, axis=0) for l in range(1, data.partners.shape[1] + 1))
  tr = data.train_rows
  return data.init_logits[tr] + table[data.row_key[tr]] + own + data.crosstalk * leak


def strict_correct(lg: Array, targets: Array) -> Array:
  """Correct only if the target's logit is strictly the largest (a tie is not a class)."""
  tgt = jnp.take_along_axis(lg, targets[:, None], axis=1)[:, 0]
  others = jnp.where(jax.nn.one_hot(targets, lg.shape[1], dtype=bool), -jnp.inf, lg)
  return tgt > jnp.max(others, axis=1)


def fit_loss(params, data: SFMData) -> Array:
  """L_n: mean cross-entropy over the training pairs."""
  lg = train_logits(params, data)
  return optax.softmax_cross_entropy_with_integer_labels(lg, data.targets[data.train_rows]).mean()


def gate_penalty(params, price: Array) -> Array:
  """Ω = λ Σ_j g_j over both families; zero exactly when every gate is closed."""
  return price * (jnp.sum(gate_values(params["mem"]["gate"]))
                  + jnp.sum(gate_values(params["group"]["gate"])))


def objective(params, data: SFMData) -> Array:
  """L_n + Ω: the free-energy-like objective divided by n."""
  return fit_loss(params, data) + gate_penalty(params, data.penalty)


def complexity(params) -> dict[str, Array]:
  """Open gates per family, λ_A = |A|/2 and its L1 relaxation Σ g / 2."""
  mem_open = jnp.sum(params["mem"]["gate"] > 0)
  group_open = jnp.sum(params["group"]["gate"] > 0)
  mass = (jnp.sum(gate_values(params["mem"]["gate"]))
          + jnp.sum(gate_values(params["group"]["gate"])))
  return {"gates/mem_open": mem_open, "gates/group_open": group_open,
          "complexity/llc": 0.5 * (mem_open + group_open).astype(jnp.float32),
          "complexity/gate_mass": 0.5 * mass}


def planted_params(data: SFMData, *, w_mem, w_group, gate: float = 1.0) -> dict:
  """Params realising given feature weights (|w| < gate·W): γ = `gate`,
  b(u) = sign(w)·√(|w|/g), b(v) = √(|w|/g); a weight that is exactly 0 gets a closed
  gate (γ = −1) instead.
  Built with numpy (host-side, no compilation)."""
  if not 0.0 < gate <= 1.0:
    raise ConfigError(f"an open gate lies in (0, 1], got {gate}")
  c = float(np.sqrt(data.weight_bound))

  def family(w, size):
    w = np.broadcast_to(np.asarray(w, np.float64), (size,))
    if np.max(np.abs(w)) >= gate * c * c:
      raise ConfigError(f"planted weights must stay below gate·W = {gate * c * c:g}")
    root = c * np.arctanh(np.sqrt(np.abs(w) / gate) / c)
    return {"u": jnp.asarray(np.sign(w) * root, jnp.float32), "v": jnp.asarray(root, jnp.float32),
            "gate": jnp.asarray(np.where(w != 0, gate, -1.0), jnp.float32)}

  return {"mem": family(w_mem, data.train_rows.shape[0]),
          "group": family(w_group, data.basis.shape[0])}


def fourier_solution(data: SFMData, scale: float = 1.0) -> dict:
  """A pure group solution: every cosine (and the zero feature) at `scale`, all else closed.

  Σ_k cos(2πks/m) peaks only at s = 0, so it classifies every pair of the op.
  """
  basis = np.asarray(data.basis)
  cosine = basis[:, 0] > 0.5  # cos(0) = 1; sines and the zero feature are 0 there
  zero_feature = np.sum(basis != 0, axis=1) == 1
  return planted_params(data, w_mem=0.0, w_group=np.where(cosine | zero_feature, scale, 0.0))


def lookup_solution(data: SFMData, scale: float = 5.0) -> dict:
  """A pure lookup table: every memorising feature at `scale`, every group gate closed."""
  return planted_params(data, w_mem=scale, w_group=0.0)
