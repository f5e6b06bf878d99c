"""The dry run: counts, disk and calibrated estimates, and it writes nothing."""

import dataclasses
import subprocess
import sys

import pytest

from grokjax import dryrun, runio
from grokjax.config import PRESETS
from grokjax.errors import ConfigError, RunFolderError
from grokjax.plan import PLANS


def test_dry_run_prints_counts_and_times_and_writes_nothing(tmp_path, tiny_cfg):
  cfg = dataclasses.replace(tiny_cfg, ckpt_every=0, ckpt_log_points=4, ckpt_trigger_acc=0.05)
  lines = []
  result = dryrun.dry_run(cfg, tmp_path / "run", write=lines.append)
  assert not (tmp_path / "run").exists()
  c = result["counts"]
  assert c["scheduled"] == 6 and c["triggered_max"] == c["stops"] - 6  # no budget: every stop
  assert any("6 scheduled (exact) + triggered at most" in l for l in lines), lines
  assert any(l.startswith("memory: ") and "a run at batch 64" in l for l in lines), lines
  t = result["training"]
  assert t["step"] > 0 and t["eval"] > 0 and t["compile_train"] > t["step"]
  assert result["stages"]["train"] >= cfg.steps * t["step"]


def test_scale_up_batch_that_cannot_fit_is_refused_before_calibrating(tmp_path, monkeypatch):
  from grokjax import memory

  monkeypatch.setattr(memory, "host_available_bytes", lambda: 2**30)  # a 1 GiB host
  with pytest.raises(ConfigError, match="batch_size=8 needs about .* GiB"):
    dryrun.dry_run(dataclasses.replace(PRESETS["gpt2-medium"], batch_size=8), tmp_path / "run",
                   write=lambda s: None)
  assert not (tmp_path / "run").exists()


def test_paper_counts_stay_under_the_budget():
  c = dryrun.checkpoint_counts(PRESETS["paper"])
  assert c["scheduled"] == 74 and c["max_bytes"] <= 5e9 < c["max_bytes"] + c["sizes"].params


def test_lens_estimates_scale_the_one_run_calibration():
  lens = dict(measures=0.5, bdm=1.0, compile_measures=10.0, compile_bdm=5.0, llc_draw=0.01,
              compile_llc=8.0, causal_first=3.0)
  est = {name: s for name, s, _ in dryrun.lens_estimates(PRESETS["paper"], PLANS["paper"], lens,
                                                         n_saved=100)}
  assert est["measures"] == pytest.approx(15.0 + 16 * (100 * 0.5 + 100 * 1.0))
  assert est["llc"] == pytest.approx(8.0 + 16 * 6 * 200 * 0.01)  # <= 6 phase steps a run
  assert est["causal"] == pytest.approx(16 * 4 * 3.0)


def test_folder_of_another_sweep_is_refused_before_any_work(tmp_path, tiny_cfg):
  runio.write_config(tmp_path, tiny_cfg, ["cpu"])
  before = sorted(p.name for p in tmp_path.iterdir())
  other = dataclasses.replace(tiny_cfg, lrs=(1e-2,))
  with pytest.raises(RunFolderError, match="holds a different sweep"):
    dryrun.dry_run(other, tmp_path, reuse=True, write=lambda s: None)
  with pytest.raises(RunFolderError, match="already exists"):
    dryrun.dry_run(tiny_cfg, tmp_path, write=lambda s: None)
  with pytest.raises(ConfigError, match="max_checkpoint_gb is 1e-05"):
    dryrun.dry_run(dataclasses.replace(tiny_cfg, max_checkpoint_gb=1e-5), tmp_path / "new",
                   write=lambda s: None)
  assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_reproduce_cli_dry_run_on_another_sweep_is_one_line(tmp_path):
  runio.write_config(tmp_path, PRESETS["demo"], ["cpu"])
  proc = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--preset=tiny",
                         f"--out={tmp_path}", "--dry_run"], capture_output=True, text=True,
                        timeout=300)
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert proc.returncode == 2 and len(errors) == 1 and "holds a different sweep" in errors[0]
  assert "Traceback" not in proc.stderr and sorted(p.name for p in tmp_path.iterdir()) == [
      "config.json"]
