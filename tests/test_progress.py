"""Progress measures: closed-form logit tables, least squares, planted spectra, vmap, a trained model."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import checkpoint, runio, tasks
from grokjax.config import MODEL_PRESETS
from grokjax.errors import ConfigError
from grokjax.measures import fourier, progress
from grokjax.model import init_params
from grokjax.train import run_data

P = 23
SMALL_P = 11
CFG = dataclasses.replace(MODEL_PRESETS["tiny"], vocab_size=SMALL_P + 2, n_layers=1)


def random_params(cfg, seed, scale=0.5):
  """A parameter tree of the model's shapes filled with N(0, scale^2) (no init compile)."""
  shapes = jax.eval_shape(lambda: init_params(cfg, jax.random.key(0)))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(scale * rng.normal(size=s.shape), s.dtype), shapes)


def train_mask(p, seed=0, frac=0.6):
  return jnp.asarray(np.random.default_rng(seed).random(tasks.num_examples(p)) < frac)


def np_ce(logits, labels, cells):
  """Mean cross-entropy over the selected cells, by hand."""
  lg = logits[cells]
  lse = np.log(np.exp(lg - lg.max(-1, keepdims=True)).sum(-1)) + lg.max(-1)
  return float(np.mean(lse - lg[np.arange(len(lg)), labels[cells]]))


def grids(p, op, mask):
  x, y = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
  train = np.zeros((p, p), bool)
  train[:, 1:] = np.asarray(mask).reshape(p, p - 1)
  return tasks.apply_op(op, x, y, p), train, y != 0


def group_coords(p, op):
  """(u[a], v[b], z[c], N, sign): the group coordinates of the numbers in the op's basis."""
  n = np.arange(p)
  if op in ("add", "sub"):
    return n, n, n, p, 1 if op == "add" else -1
  log = tasks.discrete_log(p)
  return log, log, log, p - 1, 1 if op == "mul" else -1


def family_table(p, op, freqs, amp, const):
  """L[a, b, c] = sum_k amp_k cos(2 pi k (u_a + s v_b - z_c) / N) + const_c on the group;
  in the dlog basis class 0 is constant and row/column 0 are arbitrary (left out)."""
  u, v, z, n, s = group_coords(p, op)
  phase = u[:, None, None] + s * v[None, :, None] - z[None, None, :]
  table = sum(a * np.cos(2 * np.pi * k * phase / n) for k, a in zip(freqs, amp)) + const
  if n == p - 1:
    table[:, :, 0] = const[0] if np.ndim(const) else const
    rng = np.random.default_rng(11)
    table[0] = rng.normal(size=table[0].shape)
    table[:, 0] = rng.normal(size=table[:, 0].shape)
  return table


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_key_frequency_table_restricted_equals_full_and_excluded_is_uniform(op):
  n = P - 1 if op in ("mul", "div") else P
  table = family_table(P, op, (3, 7), (2.5, 1.5), 0.4)
  mask = train_mask(P)
  m = jax.jit(lambda t, tm: progress.table_losses(t, p=P, op=op, train_mask=tm,
                                                  mask_K=progress.freqs_mask((3, 7), n // 2)))(
      jnp.asarray(table, jnp.float32), mask)
  np.testing.assert_allclose(m["progress/restricted_loss"], m["progress/full_loss"], rtol=1e-5)
  np.testing.assert_allclose(m["progress/excluded_loss"], np.log(P), rtol=1e-6)
  answers, train, _ = grids(P, op, mask)
  if n == P - 1:
    train[0] = False  # 0 op y lies outside the group
  np.testing.assert_allclose(m["progress/full_loss"], np_ce(table, answers, train), rtol=1e-5)
  assert float(m["progress/restricted_acc"]) == 1.0


def test_mixed_table_gives_hand_computed_losses():
  """Key part (k = 3, 7) + per-class bias + noise off the key directions: a non-key family
  term (k = 5) and a term in x alone with zero mean over x."""
  rng = np.random.default_rng(1)
  bias = rng.normal(size=P)
  key = family_table(P, "add", (3, 7), (2.0, 1.2), 0.0)
  x = np.arange(P)
  noise = family_table(P, "add", (5,), (1.7,), 0.0) \
      + (np.cos(2 * np.pi * 2 * x / P)[:, None, None] * rng.normal(size=(1, 1, P)))
  table = key + noise + bias
  mask = train_mask(P, seed=2)
  for on in ("train", "test", "all"):
    m = progress.table_losses(jnp.asarray(table, jnp.float32), p=P, op="add", train_mask=mask,
                              mask_K=progress.freqs_mask((3, 7), P // 2), restricted_on=on)
    answers, train, task = grids(P, "add", mask)
    cells = {"train": train, "test": task & ~train, "all": task}[on]
    np.testing.assert_allclose(m["progress/restricted_loss"], np_ce(key + bias, answers, cells),
                               rtol=1e-5)
    np.testing.assert_allclose(m["progress/excluded_loss"], np_ce(noise + bias, answers, train),
                               rtol=1e-5)
    np.testing.assert_allclose(m["progress/full_loss"], np_ce(table, answers, cells), rtol=1e-5)


@pytest.mark.parametrize("n,sign", [(11, 1), (11, -1), (10, 1), (10, -1)])
def test_split_is_the_least_squares_projection(n, sign):
  """Against lstsq on explicit cos/sin(2 pi k (a + s b) / n) vectors and the constant (even n:
  the Nyquist k = n / 2 has only its cosine)."""
  rng = np.random.default_rng(n + sign)
  table = rng.normal(size=(n, n, 3))
  keys = (2, n // 2)
  a, b = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  cols = [np.ones(n * n)]
  for k in keys:
    th = (2 * np.pi * k * (a + sign * b) / n).reshape(-1)
    cols += [np.cos(th)] + ([np.sin(th)] if 2 * k != n else [])
  basis = np.stack(cols, 1)
  coef = np.linalg.lstsq(basis, table.reshape(n * n, 3), rcond=None)[0]
  fit = (basis @ coef).reshape(n, n, 3)
  restricted, excluded = progress.split_logits(jnp.asarray(table),
                                               progress.freqs_mask(keys, n // 2), sign=sign)
  np.testing.assert_allclose(restricted, fit, atol=1e-5)
  np.testing.assert_allclose(excluded, table - fit + table.mean(axis=(0, 1)), atol=1e-5)


def planted_params(cfg, p, op, freqs, amps, seed=0):
  """Random tree whose number embeddings are cos/sin planes at `freqs` (group coordinates)."""
  params = random_params(cfg, seed)
  u, _, _, n, _ = group_coords(p, op)
  d = cfg.d_model
  q = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, 2 * len(freqs))))[0]
  rows = np.zeros((p, d)) + 0.3
  for i, (k, amp) in enumerate(zip(freqs, amps)):
    th = 2 * np.pi * k * u / n
    rows += amp * (np.cos(th)[:, None] * q[:, 2 * i] + np.sin(th)[:, None] * q[:, 2 * i + 1])
  if n == p - 1:
    rows[0] = np.random.default_rng(seed + 1).normal(size=d)
  emb = params["tok_embed"]["embedding"].at[:p].set(jnp.asarray(rows, jnp.float32))
  return {**params, "tok_embed": {"embedding": emb}}


@pytest.mark.parametrize("op", ["add", "mul"])
def test_key_frequencies_of_a_planted_embedding(op):
  params = planted_params(CFG, SMALL_P, op, (4, 2), (3.0, 2.0))
  mask = train_mask(SMALL_P)
  def fn(params, **kw):
    return jax.jit(functools.partial(progress.progress_measures, CFG, p=SMALL_P, op=op,
                                     train_mask=mask, **kw))(params)

  m = fn(params, n_key=2)
  assert m["progress/key_freqs"].tolist() == [4, 2]
  assert int(m["progress/key_freq_0"]) == 4 and int(m["progress/key_freq_1"]) == 2
  np.testing.assert_allclose(m["progress/key_share"], 1.0, atol=1e-5)
  np.testing.assert_array_equal(m["progress/key_mask"], progress.freqs_mask((2, 4), 5))
  share = progress.spectrum(params, p=SMALL_P, basis=fourier.resolve_basis(op, "auto"))
  np.testing.assert_allclose(share[np.array([3, 1])], [9 / 13, 4 / 13], atol=1e-5)  # amp^2
  th = progress.key_mask(share, n_key=None, min_share=0.1)
  np.testing.assert_array_equal(th, m["progress/key_mask"])
  fm = fourier.fourier_measures(CFG, params, p=SMALL_P, op=op, occam=False, n_key=2)
  assert [int(fm[f"fourier/embed_key_freq_{i}"]) for i in range(2)] == [4, 2]
  with pytest.raises(ConfigError, match="freq_mask"):
    fn(params, n_key=2, freq_mask=jnp.ones(4))


def test_gini_of_the_neuron_logit_map():
  """W_U's number columns on one frequency give Gini (K - 1) / K; on all frequencies with equal
  norm, 0. Zero-mean W_U columns make the centring of W_out irrelevant."""
  p, d, k_all = SMALL_P, CFG.d_model, SMALL_P // 2
  params = random_params(CFG, 3)
  g = np.random.default_rng(4).normal(size=(d, 2 * k_all))
  q = np.linalg.qr(g - g.mean(axis=0))[0]  # orthonormal columns with zero mean over d_model
  c = np.arange(p)

  def with_unembed(freqs):
    w = sum(np.outer(q[:, 2 * k - 2], np.cos(2 * np.pi * k * c / p))
            + np.outer(q[:, 2 * k - 1], np.sin(2 * np.pi * k * c / p)) for k in freqs)
    kernel = params["unembed"]["kernel"].at[:, :p].set(jnp.asarray(w, jnp.float32))
    w_out = jnp.asarray(np.linalg.qr(np.random.default_rng(5).normal(size=(128, d)))[0])
    blocks = {**params["blocks_0"], "fc_out": {**params["blocks_0"]["fc_out"], "kernel": w_out}}
    return {**params, "unembed": {"kernel": kernel}, "blocks_0": blocks,
            "ln_f": {**params["ln_f"], "scale": jnp.ones(d)}}

  fn = jax.jit(lambda q_: progress.progress_measures(CFG, q_, p=p, op="add",
                                                     train_mask=train_mask(p)))
  one, spread = fn(with_unembed((3,))), fn(with_unembed(range(1, k_all + 1)))
  np.testing.assert_allclose(one["progress/gini"], (k_all - 1) / k_all, atol=1e-5)
  assert int(jnp.argmax(one["progress/wl_norms"])) == 2
  np.testing.assert_allclose(spread["progress/gini"], 0.0, atol=1e-4)


def test_arguments_are_checked():
  share = jnp.ones(5) / 5
  with pytest.raises(ConfigError, match="exactly one"):
    progress.key_mask(share, n_key=None)
  with pytest.raises(ConfigError, match="n_key"):
    progress.key_mask(share, n_key=6)
  with pytest.raises(ConfigError, match="min_share"):
    progress.key_mask(share, n_key=None, min_share=0.0)
  params = random_params(CFG, 0)
  with pytest.raises(ConfigError, match="restricted_on"):
    progress.progress_measures(CFG, params, p=SMALL_P, op="add", train_mask=train_mask(SMALL_P),
                               restricted_on="val")
  with pytest.raises(ConfigError, match="train_mask"):
    progress.progress_measures(CFG, params, p=SMALL_P, op="add", train_mask=jnp.ones(7, bool))
  with pytest.raises(ConfigError, match="source"):
    progress.progress_measures(CFG, params, p=SMALL_P, op="add", train_mask=train_mask(SMALL_P),
                               source="attn")


def test_polynomial_op_has_nan_losses():
  params = random_params(CFG, 0)
  m = progress.progress_measures(CFG, params, p=SMALL_P, op="x2_plus_y2",
                                 train_mask=train_mask(SMALL_P))
  assert np.isnan(float(m["progress/restricted_loss"]))
  assert np.isfinite(float(m["progress/gini"]))


@pytest.mark.parametrize("op", ["sub", "div"])
def test_vmapped_equals_looped(op):
  trees = [random_params(CFG, 8), random_params(CFG, 9)]
  masks = [train_mask(SMALL_P, 1), train_mask(SMALL_P, 2)]
  freqs = [progress.freqs_mask((1, 2), 5), progress.freqs_mask((4,), 5)]
  fn = lambda q, tm, fm: progress.progress_measures(CFG, q, p=SMALL_P, op=op, train_mask=tm,
                                                    freq_mask=fm)
  vm = jax.jit(jax.vmap(fn))(jax.tree.map(lambda *a: jnp.stack(a), *trees), jnp.stack(masks),
                             jnp.stack(freqs))
  one = [jax.jit(fn)(*args) for args in zip(trees, masks, freqs)]
  assert vm["progress/key_freqs"].shape == (2, 3)
  np.testing.assert_array_equal(vm["progress/key_mask"], np.stack(freqs))  # the given sets
  own = progress.key_mask(progress.spectrum(trees[1], p=SMALL_P,
                                            basis=fourier.resolve_basis(op, "auto")))
  assert sorted(vm["progress/key_freqs"][1].tolist()) == (np.flatnonzero(own) + 1).tolist()
  assert float(one[0]["progress/excluded_loss"]) != float(one[1]["progress/excluded_loss"])
  for k in vm:
    np.testing.assert_allclose(vm[k], np.stack([o[k] for o in one]), rtol=2e-4, atol=1e-5)


def test_trained_model_agrees_with_the_fourier_lens(tiny_run_dir):
  """On a trained tiny sweep (add and mul): the key frequencies are the Fourier lens's, and
  the full loss is metrics.csv's train loss up to the two non-number tokens."""
  cfg = runio.load_config(tiny_run_dir)
  step = checkpoint.list_steps(tiny_run_dir)[-1]
  m = runio.read_csv(tiny_run_dir / "metrics.csv")
  for i in (0, 2):  # one add run, one mul run
    spec = cfg.runs[i]
    params = checkpoint.load_params(tiny_run_dir, step, index=i)
    mask = run_data(cfg, spec).is_train
    out = jax.jit(functools.partial(progress.progress_measures, cfg.model_config, p=cfg.p,
                                    op=spec.op, n_key=3))(params, train_mask=mask)
    fm = fourier.fourier_measures(cfg.model_config, params, p=cfg.p, op=spec.op, n_key=3,
                                  occam=False)
    assert out["progress/key_freqs"].tolist() == [int(fm[f"fourier/embed_key_freq_{j}"])
                                                  for j in range(3)]
    share = progress.spectrum(params, p=cfg.p, basis=fourier.resolve_basis(spec.op, "auto"),
                              source="unembed")
    assert (jax.lax.top_k(share, 3)[1] + 1).tolist() == [
        int(fm[f"fourier/unembed_key_freq_{j}"]) for j in range(3)]
    train_loss = m["train_loss"][(m["run"] == i) & (m["step"] == step)][0]
    full = float(out["progress/full_loss"])
    if spec.op == "add":  # the dlog basis leaves out the x = 0 row, so only add compares
      assert full <= train_loss + 1e-5 and full > 0.9 * train_loss, (full, train_loss)
    assert float(out["progress/excluded_loss"]) > full
