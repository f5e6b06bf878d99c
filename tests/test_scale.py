"""The scale-up protocol on 2-layer cuts of the GPT-2-medium and -large shapes.

A cut keeps d_model, heads and d_mlp of its shape (and bf16, remat, clipping at 1.0)
with 2 layers, on x - y mod 23 at batch 8, so a step is cheap on a CPU.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from grokjax import checkpoint, config, memory, runio, sweep
from grokjax.config import MODEL_PRESETS, PRESETS
from grokjax.errors import ConfigError
from grokjax.model import Transformer, init_params
from grokjax.train import answer_loss, init_state, make_optimizer, run_data, run_hypers, train_step

quiet = dict(write=lambda s: None, devices=jax.devices()[:1])  # no padded copies
SHAPES = ("gpt2-medium", "gpt2-large")


@pytest.fixture
def cut(monkeypatch):
  """cut(shape, **changes): the shape's sweep preset on its 2-layer model, batch 8, p 23."""

  def make(shape, **changes):
    name = f"{shape}-cut"
    monkeypatch.setitem(config.MODEL_PRESETS, name,
                        dataclasses.replace(MODEL_PRESETS[shape], n_layers=2))
    return dataclasses.replace(PRESETS[shape], **{"model": name, "p": 23, "batch_size": 8,
                                                  **changes})

  return make


@pytest.mark.parametrize("shape", SHAPES)
def test_presets_follow_the_protocol(shape):
  cfg = PRESETS[shape]
  cfg.validate()
  mc = cfg.model_config
  assert (cfg.grad_clip, mc.remat, mc.dtype, cfg.ops, cfg.p) == (1.0, True, "bfloat16", ("sub",), 97)
  assert mc.n_layers * mc.n_heads == {"gpt2-medium": 24 * 16, "gpt2-large": 36 * 20}[shape]
  assert sweep.schedule(cfg)[1] == {100, 1_000, 10_000, 100_000}


def test_explicit_ckpt_steps_replace_the_schedule_and_keep_the_last(tiny_cfg):
  cfg = dataclasses.replace(tiny_cfg, steps=500, ckpt_steps=(3, 30, 300, 3000))
  stops, ckpts = sweep.schedule(cfg)
  assert ckpts == {3, 30, 300, 500} and ckpts <= set(stops)
  with pytest.raises(ConfigError, match="ckpt_steps"):
    dataclasses.replace(tiny_cfg, ckpt_steps=(10, -1)).validate()


def test_params_and_optimizer_state_are_float32_activations_bfloat16(cut):
  cfg = cut("gpt2-large")
  hypers = {k: jnp.asarray(v[0]) for k, v in run_hypers(cfg.runs).items()}
  state = jax.eval_shape(lambda k: init_state(cfg, k, **hypers), jax.random.key(0))
  floats = [a.dtype for a in jax.tree.leaves(state) if jnp.issubdtype(a.dtype, jnp.floating)]
  assert floats and set(floats) == {jnp.dtype(jnp.float32)}
  model = Transformer(cfg.model_config)
  tokens = jnp.zeros((2, 4), jnp.int32)
  logits, sites = jax.eval_shape(
      lambda p: model.apply({"params": p}, tokens, return_sites=True), state.params)
  assert logits.dtype == jnp.float32
  for name in ("blocks.0.resid_post", "blocks.1.mlp.hidden", "blocks.0.attn.result"):
    assert sites[name].dtype == jnp.bfloat16, name
  jaxpr = jax.make_jaxpr(lambda p: model.apply({"params": p}, tokens))(state.params)
  dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
  assert dots and all(e.outvars[0].aval.dtype == jnp.bfloat16 for e in dots)


def test_injected_hyperparameters_stay_float32_for_bfloat16_params(cut):
  cfg = cut("gpt2-medium", grokfast_lambs=(2.0,))
  params = {"w": jnp.ones((3, 2), jnp.bfloat16)}
  opt_state = make_optimizer(cfg, 1e-3, 1.0, grokfast_lamb=2.0).init(params)
  hypers = [a for path, a in jax.tree_util.tree_flatten_with_path(opt_state)[0]
            if "hyperparams" in jax.tree_util.keystr(path)]
  assert len(hypers) >= 4 and all(a.dtype == jnp.float32 for a in hypers)


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
def test_cut_trains_finite_loss_that_falls_on_a_fixed_batch(cut, shape):
  cfg = cut(shape)
  spec = cfg.runs[0]
  run = run_data(cfg, spec)
  # only 8 train examples: every step's minibatch is the same batch, reshuffled
  keep = np.flatnonzero(np.asarray(run.is_train))[:cfg.batch_size]
  run = run._replace(is_train=jnp.zeros_like(run.is_train).at[keep].set(True),
                     n_train=jnp.int32(cfg.batch_size))
  hypers = {k: jnp.asarray(v[0]) for k, v in run_hypers([spec]).items()}
  model = Transformer(cfg.model_config)
  x, y = run.inputs[keep], run.targets[keep]  # the batch alone: a full-split pass costs more

  @jax.jit
  def losses(key):
    state = init_state(cfg, key, **hypers)

    def body(s, _):
      return train_step(cfg, s, run), answer_loss(model, s.params, x, y)[0].mean()

    return jax.lax.scan(body, state, length=4)[1]

  curve = np.asarray(losses(jax.random.key(0)))
  assert np.isfinite(curve).all()
  assert curve[-1] < curve[0] - 0.1, curve


@pytest.mark.slow
def test_cut_checkpoints_on_schedule_and_resumes_exactly(tmp_path, cut):
  # p 11: each stop evaluates the full split, 121 examples
  cfg = cut("gpt2-medium", p=11, steps=2, eval_every=2, log_points=0, ckpt_steps=(1,))
  sweep.train_sweep(cfg, tmp_path / "a", **quiet)
  assert checkpoint.list_steps(tmp_path / "a") == [1, 2]

  class Interrupt(Exception):
    pass

  def stop_at_1(step):
    if step == 1:
      raise Interrupt

  with pytest.raises(Interrupt):
    sweep.train_sweep(cfg, tmp_path / "b", on_stop=stop_at_1, **quiet)
  sweep.train_sweep(cfg, tmp_path / "b", resume=True, **quiet)
  a, b = (runio.read_csv(tmp_path / d / "metrics.csv") for d in "ab")
  assert list(a["step"]) == list(b["step"]) == [0, 1, 2]
  assert np.isfinite(a["train_loss"]).all()
  for k in ("train_loss", "test_loss", "test_acc"):
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  pa, pb = (checkpoint.load_stacked_params(tmp_path / d, 2) for d in "ab")
  jax.tree.map(np.testing.assert_array_equal, pa, pb)


def test_a_batch_that_does_not_fit_is_one_line_before_any_allocation(tmp_path, cut, monkeypatch):
  cfg = cut("gpt2-large", batch_size=64)
  est = memory.estimate(cfg)
  n_params = sum(a.size for a in jax.tree.leaves(
      jax.eval_shape(lambda k: init_params(cfg.model_config, k), jax.random.key(0))))
  assert 0 <= est.state - 3 * 4 * n_params < 1024  # params + two AdamW moments, float32
  assert est.gradients == memory.GRAD_COPIES * 4 * n_params
  on_cpu = memory.estimate(cfg, host_copy=True)
  assert on_cpu.total(64) - est.total(64) == est.state
  with pytest.raises(ConfigError, match=r"batch_size=64 needs about [\d.]+ GiB .* host "
                                        r"memory has 0\.50 GiB available; no batch size fits"):
    memory.check_fits(cfg, est, runs=1, available=2**29, where="host memory")
  available = est.total(1) + 10 * est.train_per_example
  fits = memory.largest_batch(est, 1, available)
  assert fits >= 10
  memory.check_fits(dataclasses.replace(cfg, batch_size=fits), est, runs=1,
                    available=available, where="host memory")
  with pytest.raises(ConfigError, match=f"at most batch_size={fits} fits"):
    memory.check_fits(dataclasses.replace(cfg, batch_size=fits + 1), est, runs=1,
                      available=available, where="host memory")
  monkeypatch.setattr(memory, "host_available_bytes", lambda: 2**29)
  with pytest.raises(ConfigError, match="batch_size=64"):
    sweep.train_sweep(cfg, tmp_path / "x", **quiet)
  assert not (tmp_path / "x").exists()


def test_remat_keeps_only_block_inputs():
  mc = MODEL_PRESETS["gpt2-large"]
  with_remat = memory.train_bytes_per_example(mc)
  without = memory.train_bytes_per_example(dataclasses.replace(mc, remat=False))
  assert without > 8 * with_remat
