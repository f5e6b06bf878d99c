"""A diverged run is never forgotten: summary.csv, exit status 3, reproduce and the report.

lr = 1e6 on the tiny preset makes the weights overflow in the first step, so the run's
loss is non-finite from step 1 on; the run beside it (lr 3e-3) stays healthy.
"""

import dataclasses
import pathlib
import subprocess
import sys

import jax
import pytest

from grokjax import cli, divergence, runio, sweep
from grokjax import pipeline as pipe
from grokjax.config import PRESETS
from grokjax.errors import EXIT_BAD_INPUT, EXIT_DIVERGED, ConfigError, DivergenceError
from grokjax.plan import PLANS

REPO = pathlib.Path(__file__).resolve().parents[1]
FLAGS = ("--preset=tiny", "--steps=4", "--eval_every=2", "--ckpt_every=2", "--lrs=0.003,1e6")
CFG = dataclasses.replace(PRESETS["tiny"], steps=4, eval_every=2, ckpt_every=2,
                          lrs=(3e-3, 1e6))
LENSES = tuple(s for s in pipe.STAGES if s not in ("train", "report"))
WARNING = ("warning: 1 run(s) produced a non-finite loss: run 1 (add seed=0 wd=1 lr=1e+06 "
           "frac=0.8) at step 1; the lenses and the report leave it out")


def reproduce(out, lines):
  return pipe.reproduce(CFG, out, PLANS["tiny"], skip=LENSES, write=lines.append,
                        devices=jax.devices()[:1])  # conftest splits the CPU in 4


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
  """reproduce from scratch on a sweep whose run 1 diverges: (folder, lines, the error)."""
  out = tmp_path_factory.mktemp("diverged") / "run"
  lines = []
  with pytest.raises(DivergenceError) as info:
    reproduce(out, lines)
  return out, lines, info.value


def test_summary_records_the_divergence_step(first_run):
  out, _, _ = first_run
  s = runio.read_csv(out / "summary.csv")
  assert [str(v) for v in s["diverged_at"]] == ["", "1"]
  assert [r["run"] for r in divergence.diverged_runs(out)] == [1]
  text = sweep.format_summary([{**r, "final_test_acc": 0.5} for r in sweep.summarize(
      CFG, runio.read_csv(out / "metrics.csv"))])
  assert text.splitlines()[2].endswith("step 1") and text.splitlines()[1].endswith("-")


def test_first_run_goes_on_to_the_report_and_then_fails(first_run):
  out, lines, error = first_run
  assert any("train: done; diverged runs" in l for l in lines), lines
  assert sum(l.endswith(WARNING) for l in lines) == 1, lines
  assert (out / "report" / "report.md").is_file()
  assert "run 1 (add seed=0 wd=1 lr=1e+06 frac=0.8) at step 1" in str(error)
  assert str(out / "report" / "report.md") in str(error)


def test_report_names_the_run_and_leaves_it_out(first_run):
  out, _, _ = first_run
  md = (out / "report" / "report.md").read_text()
  assert "run 1 (add seed 0 wd 1 lr 1e+06) diverged at step 1" in md
  grok = runio.read_csv(out / "report" / "tables" / "grokking.csv")
  assert grok["run"].tolist() == [0]
  status = runio.read_csv(out / "report" / "tables" / "reproduction_status.csv")
  grokking = [m for m in status["measured"] if "reach test acc" in m]
  assert grokking == ["wd 1: 0/1 runs reach test acc 0.99"], grokking


def test_rerun_reuses_training_and_warns_again(first_run):
  out, _, _ = first_run
  lines = []
  with pytest.raises(DivergenceError, match="1 run"):
    reproduce(out, lines)
  assert any("train: reused (training finished)" in l for l in lines), lines
  assert sum(l.endswith(WARNING) for l in lines) == 1, lines


def run_train(*args):
  return subprocess.run([sys.executable, "-m", "experiments.train", *args, "--compilation_cache="],
                        capture_output=True, text=True, timeout=300, cwd=REPO)


def test_cli_exit_status_3_for_divergence_and_2_for_bad_input(first_run, tmp_path):
  out, _, _ = first_run
  (out / "summary.csv").unlink()  # resuming the finished sweep writes it again from the files
  proc = run_train(*FLAGS, f"--out={out}", "--resume")
  assert proc.returncode == EXIT_DIVERGED == 3, proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert errors == [f"error: 1 run(s) produced a non-finite loss: run 1 (add seed=0 wd=1 "
                    f"lr=1e+06 frac=0.8) at step 1; the other runs' results are in {out}"], errors
  assert [str(v) for v in runio.read_csv(out / "summary.csv")["diverged_at"]] == ["", "1"]
  proc = run_train("--preset=tiny", "--lrs=abc", f"--out={tmp_path}/new")
  assert proc.returncode == EXIT_BAD_INPUT == 2 and "error: --lrs" in proc.stderr, proc.stderr


@pytest.mark.parametrize("error, code", [(DivergenceError("x"), 3), (ConfigError("x"), 2)])
def test_run_main_exits_with_the_error_s_code(error, code, capsys):
  def main(argv):
    raise error

  with pytest.raises(SystemExit) as info:
    cli.run_main(main)([])
  assert info.value.code == code and capsys.readouterr().err == "error: x\n"
