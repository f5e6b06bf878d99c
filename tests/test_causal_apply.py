"""The causal lens over a run folder: library entry point and the CLI."""

import subprocess
import sys

import jax
import numpy as np
import pytest

from grokjax import checkpoint, runio
from grokjax.causal import apply
from grokjax.config import SweepConfig
from grokjax.errors import CheckpointError, ConfigError, RunFolderError
from tests.test_causal_patching import random_params

STEPS = (0, 5)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A run folder of 4 tiny runs (add/sub x wd 0/1) with random parameters at steps 0, 5."""
  out = tmp_path_factory.mktemp("causal_run")
  cfg = SweepConfig(ops=("add", "sub"), p=11, seeds=(0,), weight_decays=(0.0, 1.0), steps=5,
                    batch_size=8, eval_every=5, ckpt_every=5, model="tiny")
  cfg.validate()
  runio.write_config(out, cfg, ["cpu"])
  mgr = checkpoint.manager(out, checkpoint.PARAMS)
  for step in STEPS:
    runs = [random_params(cfg.model_config, 10 * step + r) for r in range(len(cfg.runs))]
    checkpoint.save(mgr, step, jax.tree.map(lambda *a: np.stack(a), *runs))
  mgr.wait_until_finished()
  return out


def over_training(path, *args, **kw):
  return apply.causal_over_training(runio.RunFolder.open(path), *args, **kw)


OPTS = apply.CausalOptions(n_pairs=12, n_random=2, ablation_examples=32)


def test_rows_cover_every_run_step_head_and_vmap_equals_loop(run_dir):
  patch, abl = over_training(run_dir, STEPS, opts=OPTS, log=lambda s: None)
  assert len(patch) == 2 * 4 * 4  # steps x runs x heads
  assert {(r["run"], r["step"], r["layer"], r["head"]) for r in patch} == {
      (r, s, l, h) for r in range(4) for s in STEPS for l in range(2) for h in range(2)}
  assert {"op", "seed", "weight_decay", "logit_diff", "logit_diff_se", "prob", "prob_se",
          "recovered", "recovered_se"} <= set(patch[0])
  assert len(abl) == 2 * 4 * (1 + 2) * 5  # steps x runs x orders x counts 0..4
  # the vmapped program equals running one run alone (patching only, to keep this quick)
  loop = apply.CausalOptions(**{**OPTS.__dict__, "vmap_runs": False, "ablation": "none"})
  alone, none = over_training(run_dir, [5], [2], opts=loop, log=lambda s: None)
  assert none == []
  want = [r for r in patch if r["run"] == 2 and r["step"] == 5]
  assert [(r["layer"], r["head"]) for r in want] == [(r["layer"], r["head"]) for r in alone]
  for a, b in zip(want, alone):
    for k in ("logit_diff", "prob", "logit_diff_se", "recovered"):
      np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-6)


def test_bad_requests_raise_one_clear_error(run_dir):
  with pytest.raises(CheckpointError, match=r"step\(s\) \[7\] not saved"):
    over_training(run_dir, [7], opts=OPTS)
  with pytest.raises(RunFolderError, match="not in the folder"):
    over_training(run_dir, [5], [4], opts=OPTS)
  with pytest.raises(ConfigError, match="out of range"):
    over_training(run_dir, [5], opts=apply.CausalOptions(heads=((0, 2),)))


def cli(run_dir, *args):
  return subprocess.run([sys.executable, "-m", "experiments.causal", f"--run_dir={run_dir}", *args],
                        capture_output=True, text=True, timeout=300)


def test_cli_writes_tables_and_figures(run_dir):
  res = cli(run_dir, "--pairs=8", "--random_orders=2", "--ablation_examples=16", "--ops=add")
  assert res.returncode == 0, res.stderr[-2000:]
  t = runio.read_csv(run_dir / "causal.csv")
  assert set(t["op"].tolist()) == {"add"} and set(t["step"].tolist()) == {5}  # default steps
  assert len(t["run"]) == 2 * 4  # the two add runs x 4 heads
  assert np.isfinite(t["logit_diff"]).all() and (t["logit_diff_se"] > 0).all()
  for name in ("causal_add.png", "causal_ablation.csv", "causal_ablation_add.png"):
    assert (run_dir / name).stat().st_size > 0


def test_cli_bad_input_prints_one_line_and_exits_2(run_dir):
  res = cli(run_dir, "--steps=0,7")
  assert res.returncode == 2
  last = res.stderr.strip().splitlines()[-1]
  assert last.startswith("error: step(s) [7] not saved") and "saved steps: [0, 5]" in last


def test_cli_parses_heads():
  from grokjax.causal.apply import parse_heads
  assert parse_heads(["0.1", "1.3"]) == ((0, 1), (1, 3))
  assert parse_heads(None) is None
  with pytest.raises(ConfigError, match="layer.head"):
    parse_heads(["0-1"])


def test_default_steps_are_log_spaced_saved_steps():
  saved = [0, 1, 2, 4, 8, 16, 100, 200, 1000, 5000, 10000]
  assert runio.log_spaced(saved, 4) == [1, 16, 1000, 10000]  # nearest to 1, 21.5, 464, 1e4
  assert runio.log_spaced([0], 4) == [0]
