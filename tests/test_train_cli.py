"""experiments.train: bad input gets one clear line and a non-zero exit."""

import subprocess
import sys

import pytest
from absl import flags

from experiments import train as train_cli
from grokjax.cli import run_main


def run_in_process(capsys, *args):
  flags.FLAGS.unparse_flags()
  flags.FLAGS(["train", *args])
  with pytest.raises(SystemExit) as exit_info:
    run_main(train_cli.main)([])
  err = capsys.readouterr().err.strip()
  return exit_info.value.code, err


@pytest.mark.parametrize("args, message", [
    (["--ops=pow"], "unknown op 'pow'; valid ops: add, sub, mul, div"),
    (["--ops=div", "--p=91"], "needs a prime modulus"),
    (["--train_frac=1.5"], "train_frac must lie in (0, 1)"),
    (["--batch_size=4000", "--train_frac=0.1"], "batch_size=4000 is larger than the train split"),
    (["--preset=nope"], "unknown preset 'nope'"),
    (["--seeds=a,b"], "--seeds"),
])
def test_bad_flags(capsys, tmp_path, args, message):
  code, err = run_in_process(capsys, f"--out={tmp_path}/x", *args)
  assert code == 2 and message in err and len(err.splitlines()) == 1, err


def test_real_cli_refuses_existing_folder_in_one_line(tmp_path):
  (tmp_path / "old.txt").write_text("keep")
  proc = subprocess.run([sys.executable, "-m", "experiments.train", "--preset=tiny",
                         f"--out={tmp_path}"], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert lines == [f"error: {tmp_path} already exists; pass --resume to continue it or "
                   "--overwrite to replace it"], proc.stderr
  assert "Traceback" not in proc.stderr and (tmp_path / "old.txt").read_text() == "keep"
