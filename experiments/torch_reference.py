"""The paper model and training loop in PyTorch eager, as the authors' scripts train it.

`nn.MultiheadAttention` with a float causal mask (-inf above the diagonal), PyTorch's
default initialisation, AdamW (lr 1e-3, betas 0.9/0.98), and minibatches cut from a
fresh index permutation of the train set every epoch. experiments/bench_train.py times
it in a process of its own (torch is an optional, benchmark-only dependency:
`pip install -e .[bench]`).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn


class Block(nn.Module):
  def __init__(self, d: int, heads: int, d_mlp: int):
    super().__init__()
    self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
    self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
    self.mlp = nn.Sequential(nn.Linear(d, d_mlp), nn.GELU(), nn.Linear(d_mlp, d))

  def forward(self, x, mask):
    h = self.ln1(x)
    x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
    return x + self.mlp(self.ln2(x))


class Model(nn.Module):
  def __init__(self, vocab: int, d=128, layers=2, heads=4, d_mlp=512, seq=4):
    super().__init__()
    self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(seq, d)
    self.blocks = nn.ModuleList(Block(d, heads, d_mlp) for _ in range(layers))
    self.ln_f, self.unembed = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)
    self.register_buffer("mask", torch.triu(torch.full((seq, seq), float("-inf")), 1))

  def forward(self, tokens):
    x = self.tok(tokens) + self.pos(torch.arange(tokens.shape[1], device=tokens.device))
    for b in self.blocks:
      x = b(x, self.mask)
    return self.unembed(self.ln_f(x))[:, -1]


def steps_per_second(inputs: np.ndarray, targets: np.ndarray, *, steps: int, batch: int = 512,
                     weight_decay: float = 1.0, seed: int = 0, device: str = "cpu") -> float:
  """Times a plain eager AdamW loop (lr 1e-3, betas 0.9/0.98) over reshuffled epochs."""
  torch.manual_seed(seed)
  x = torch.as_tensor(inputs, dtype=torch.long, device=device)
  y = torch.as_tensor(targets, dtype=torch.long, device=device)
  model = Model(int(inputs.max()) + 1).to(device)
  opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=weight_decay)
  loss_fn = nn.CrossEntropyLoss()

  def batches():
    while True:
      perm = torch.randperm(len(x), device=device)
      for i in range(0, len(x) - batch + 1, batch):
        yield perm[i:i + batch]

  it = batches()
  for _ in range(5):  # warm-up
    idx = next(it)
    opt.zero_grad(); loss_fn(model(x[idx]), y[idx]).backward(); opt.step()
  sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
  sync()
  t0 = time.perf_counter()
  for _ in range(steps):
    idx = next(it)
    opt.zero_grad()
    loss_fn(model(x[idx]), y[idx]).backward()
    opt.step()
  sync()  # CUDA kernels run asynchronously: time their completion, not their launch
  return steps / (time.perf_counter() - t0)
