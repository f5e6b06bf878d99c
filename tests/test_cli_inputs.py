"""Bad command-line input to the experiments CLIs: one `error: ...` line and a non-zero exit,
never a traceback, never accepted in silence; a refused llc run writes nothing.

Most cases fail before any training or sampling, so each costs one interpreter start.
"""

import dataclasses
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from grokjax import cli
from grokjax.errors import ConfigError, RunFolderError

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  """A tiny sweep (one run) trained for 20 steps, checkpoints at 0, 10, 20."""
  from grokjax import sweep
  from grokjax.config import PRESETS

  cfg = dataclasses.replace(PRESETS["tiny"], steps=20, eval_every=10, ckpt_every=10,
                            log_points=0)
  out = tmp_path_factory.mktemp("cli") / "run"
  sweep.train_sweep(cfg, out, write=lambda s: None)
  return out


def run_cli(module: str, *args) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *map(str, args)],
                        capture_output=True, text=True, timeout=300, cwd=ROOT)


def assert_one_error_line(proc, message: str) -> None:
  assert proc.returncode == 2, proc.stderr
  assert "Traceback" not in proc.stderr, proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error: ")]
  assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
  assert message in errors[0], errors[0]


@pytest.mark.parametrize("module, args, message", [
    ("causal", ["--weight_decays=abc"], "--weight_decays takes comma-separated floats, got 'abc'"),
    ("llc", ["--seeds=x"], "--seeds takes comma-separated ints, got 'x'"),
    ("llc_invariance", ["--weight_decays=1,abc"], "--weight_decays takes comma-separated floats"),
    ("causal", ["--ablation_examples=0"], "--ablation_examples must be > 0, got 0"),
    ("causal", ["--max_batch=0"], "--max_batch must be > 0, got 0"),
    ("causal", ["--random_orders=-1"], "--random_orders must be > 0, got -1"),
    ("measure", ["--n_probes=0"], "n_probes must be >= 1, got 0"),
    ("measure", ["--lenses=bdm,bdm"], "lenses repeated: bdm, bdm"),
    ("measure", ["--steps=10,20,10"], "--steps repeats 10"),
    ("llc", ["--checkpoint_batch=0"], "--checkpoint_batch must be > 0, got 0"),
    ("llc_invariance", ["--samplers=sgld,sgld"], "--samplers repeats sgld"),
    ("measure", ["stray"], "unexpected argument(s): stray"),
])
def test_bad_flags_on_a_run_folder(run_dir, module, args, message):
  assert_one_error_line(run_cli(module, f"--run_dir={run_dir}", *args), message)


@pytest.mark.parametrize("module, args, message", [
    ("train", ["--preset=tiny", "--cpu_devices=-3"], "--cpu_devices must be > 0, got -3"),
    ("train", ["--preset=tiny", "foo", "bar"], "unexpected argument(s): foo bar"),
    ("train", ["--preset=tiny", "--ops=add,add"], "ops has duplicate values"),
    ("reproduce", ["--preset=tiny", "--cpu_devices=-3"], "--cpu_devices must be >= 0, got -3"),
    ("reproduce", ["--preset=tiny", "--ops=pow"], "unknown op 'pow'"),
    ("reproduce", ["--preset=paper", "--weight_decays=1,1"], "weight_decays has duplicate values"),
    ("phase", ["--delay_factor=0"], "--delay_factor must be > 0, got 0"),
    ("phase", ["--seeds=0,0"], "seeds has duplicate values [0, 0]"),
    ("surrogate", ["--penalties=1,1"], "--penalties repeats 1.0"),
    ("surrogate", ["--eval_points=0"], "eval_points must be >= 1"),
])
def test_bad_flags_before_training(tmp_path, module, args, message):
  out = tmp_path / "out"
  assert_one_error_line(run_cli(module, f"--out={out}", *args), message)
  assert not out.exists()


def test_an_unknown_flag_exits_non_zero_without_a_traceback(run_dir):
  proc = run_cli("measure", f"--run_dir={run_dir}", "--workers=-1")
  assert proc.returncode != 0 and "Traceback" not in proc.stderr
  assert "Unknown command line flag 'workers'" in proc.stderr


def test_llc_refuses_a_bad_folder_before_writing(run_dir, tmp_path):
  garbage = pathlib.Path(shutil.copytree(run_dir, tmp_path / "garbage"))
  (garbage / "metrics.csv").write_text("not,a\nmetrics,csv\n")
  empty = tmp_path / "empty"
  (empty / "checkpoints" / "params").mkdir(parents=True)
  for name in ("config.json", "metrics.csv"):
    shutil.copy(run_dir / name, empty / name)
  for folder, message in ((garbage, "metrics.csv: column(s) run, op, seed, weight_decay, step, "
                                    "test_acc missing or not numeric"),
                          (empty, "no checkpoints")):
    proc = run_cli("llc", f"--run_dir={folder}", "--num_draws=4", "--num_burnin=1")
    assert_one_error_line(proc, message)
    assert not (folder / "llc.csv").exists() and not (folder / "llc.png").exists()


def test_shared_checks_name_the_flag():
  cli.check_positive(a=1, b=None, c=0.5)
  cli.check_non_negative(a=0)
  cli.check_unique("x", [1, 2])
  with pytest.raises(ConfigError, match=r"^--b must be > 0, got 0$"):
    cli.check_positive(a=1, b=0)
  with pytest.raises(ConfigError, match=r"^--a must be >= 0, got -1$"):
    cli.check_non_negative(a=-1)
  with pytest.raises(ConfigError, match=r"^--x repeats 2, 1$"):
    cli.check_unique("x", [2, 1, 2, 3, 1])
  with pytest.raises(ConfigError, match="--steps takes comma-separated integers"):
    cli.parse_ints("1,b", "steps")
  with pytest.raises(RunFolderError, match=r"m.csv: column\(s\) step missing or not numeric"):
    cli.check_columns({"run": np.array([0]), "step": np.array(["x"], object)},
                      ("run", "step"), "m.csv")
