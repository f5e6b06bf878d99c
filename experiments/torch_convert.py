"""grokjax's transformer parameters as a state_dict of experiments/torch_reference.py's `Model`.

Pure numpy (no torch import), so the mapping can be read and tested on its own:

  grokjax (flax, kernels [in, out], attention per head)     torch (weights [out, in])
  tok_embed/embedding [V, D]                                tok.weight
  pos_embed [T, D]                                          pos.weight
  blocks_l/ln1, ln2, ln_f: scale, bias                      ….weight, ….bias
  blocks_l/attn/{query,key,value}/kernel [D, H, E]          attn.in_proj_weight [3D, D]: the
  blocks_l/attn/{query,key,value}/bias [H, E]                 q, k, v rows, row h·E + e; bias [3D]
  blocks_l/attn/out_kernel [H, E, D], out_bias [D]          attn.out_proj.weight [D, H·E], .bias
  blocks_l/fc_in, fc_out: kernel, bias                      mlp.0, mlp.2: weight (transposed), bias
  unembed/kernel [D, V]                                     unembed.weight [V, D]

`nn.MultiheadAttention` splits its D features into heads as contiguous blocks of E, so the
per-head layout flattens to h·E + e on both sides. The torch model has LayerNorm eps 1e-5
and exact GELU built in; other model configurations are refused rather than converted to a
different function.
"""

from __future__ import annotations

import numpy as np

from grokjax.config import ModelConfig
from grokjax.errors import ConfigError


def check_supported(cfg: ModelConfig) -> None:
  """Raises ConfigError unless torch_reference.Model computes the same function as cfg's model."""
  if cfg.activation != "gelu" or cfg.ln_eps != 1e-5 or cfg.dtype != "float32":
    raise ConfigError("the PyTorch reference model has exact GELU, LayerNorm eps 1e-5 and "
                      f"float32; this model has activation={cfg.activation!r}, "
                      f"ln_eps={cfg.ln_eps}, dtype={cfg.dtype!r}")


def model_kwargs(cfg: ModelConfig) -> dict:
  """The torch_reference.Model(...) arguments for cfg's shape."""
  return dict(vocab=cfg.vocab_size, d=cfg.d_model, layers=cfg.n_layers, heads=cfg.n_heads,
              d_mlp=cfg.d_mlp, seq=cfg.seq_len)


def _block(p: dict) -> dict[str, np.ndarray]:
  a = p["attn"]
  qkv = [np.asarray(a[n]["kernel"]) for n in ("query", "key", "value")]  # [D, H, E] each
  d = qkv[0].shape[0]
  return {
      "ln1.weight": p["ln1"]["scale"], "ln1.bias": p["ln1"]["bias"],
      "ln2.weight": p["ln2"]["scale"], "ln2.bias": p["ln2"]["bias"],
      "attn.in_proj_weight": np.concatenate([k.reshape(d, -1).T for k in qkv], axis=0),
      "attn.in_proj_bias": np.concatenate(
          [np.asarray(a[n]["bias"]).reshape(-1) for n in ("query", "key", "value")]),
      "attn.out_proj.weight": np.asarray(a["out_kernel"]).reshape(-1, d).T,
      "attn.out_proj.bias": a["out_bias"],
      "mlp.0.weight": np.asarray(p["fc_in"]["kernel"]).T, "mlp.0.bias": p["fc_in"]["bias"],
      "mlp.2.weight": np.asarray(p["fc_out"]["kernel"]).T, "mlp.2.bias": p["fc_out"]["bias"],
  }


def state_dict(params: dict, cfg: ModelConfig) -> dict[str, np.ndarray]:
  """Every parameter of torch_reference.Model (its causal-mask buffer aside) from `params`."""
  check_supported(cfg)
  out = {"tok.weight": params["tok_embed"]["embedding"], "pos.weight": params["pos_embed"]}
  for l in range(cfg.n_layers):
    out.update({f"blocks.{l}.{k}": v for k, v in _block(params[f"blocks_{l}"]).items()})
  out.update({"ln_f.weight": params["ln_f"]["scale"], "ln_f.bias": params["ln_f"]["bias"],
              "unembed.weight": np.asarray(params["unembed"]["kernel"]).T})
  return {k: np.ascontiguousarray(np.asarray(v, np.float32)) for k, v in out.items()}


def torch_model(params: dict, cfg: ModelConfig):
  """A torch_reference.Model holding `params` (imports torch: the bench extra)."""
  import torch

  from experiments.torch_reference import Model

  model = Model(**model_kwargs(cfg))
  tensors = {k: torch.tensor(v) for k, v in state_dict(params, cfg).items()}
  missing, unexpected = model.load_state_dict(tensors, strict=False)
  if list(missing) != ["mask"] or unexpected:  # the mask is a buffer the model builds itself
    raise ConfigError(f"state_dict does not fit the model: missing {missing}, extra {unexpected}")
  return model
