"""experiments.train: bad input gets one clear line and a non-zero exit.

The flag-to-config path is tested in process (experiments modules all define absl
flags at import, so importing several in one process would collide); two cases go
through the real command line to check the exit status and the one-line message.
"""

import subprocess
import sys
import types

import pytest

from grokjax.cli import SWEEP_LIST_FLAGS, SWEEP_SCALAR_FLAGS, sweep_config_from_flags
from grokjax.errors import ConfigError


def flag_values(**given):
  names = [*SWEEP_LIST_FLAGS, *SWEEP_SCALAR_FLAGS, "lr", "train_frac"]
  return types.SimpleNamespace(**{**{n: None for n in names}, **given})


@pytest.mark.parametrize("given, message", [
    (dict(ops=["pow"]), "unknown op 'pow'; valid ops: add, sub, mul, div"),
    (dict(ops=["div"], p=91), "needs a prime modulus"),
    (dict(train_frac=1.5), "train_frac must lie in (0, 1)"),
    (dict(batch_size=4000, train_frac=0.1), "batch_size=4000 is larger than the train split"),
    (dict(seeds=["a", "b"]), "--seeds"),
])
def test_bad_flags_raise_one_line_config_errors(given, message):
  with pytest.raises(ConfigError) as info:
    sweep_config_from_flags(flag_values(**given), "paper")
  assert message in str(info.value) and "\n" not in str(info.value)


def test_flags_override_the_preset():
  cfg = sweep_config_from_flags(flag_values(ops=["add"], steps=7, lr=0.01), "demo")
  assert cfg.ops == ("add",) and cfg.steps == 7 and cfg.lrs == (0.01,)
  assert cfg.weight_decays == (0.0, 1.0)  # untouched preset value
  with pytest.raises(ConfigError, match="unknown preset 'nope'"):
    sweep_config_from_flags(flag_values(), "nope")


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "experiments.train", *args],
                        capture_output=True, text=True, timeout=300)


def test_real_cli_bad_op_and_existing_folder(tmp_path):
  proc = run_cli("--ops=pow", f"--out={tmp_path}/new")
  assert proc.returncode == 2 and "Traceback" not in proc.stderr
  assert "error: unknown op 'pow'; valid ops: add, sub, mul, div" in proc.stderr
  (tmp_path / "old.txt").write_text("keep")
  proc = run_cli("--preset=tiny", f"--out={tmp_path}")
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert lines == [f"error: {tmp_path} already exists; pass --resume to continue it or "
                   "--overwrite to replace it"], proc.stderr
  assert "Traceback" not in proc.stderr and (tmp_path / "old.txt").read_text() == "keep"
