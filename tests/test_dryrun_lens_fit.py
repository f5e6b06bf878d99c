"""The dry run's line on whether the lens stages together fit within the training time."""

import pytest

from grokjax import dryrun
from grokjax.config import PRESETS
from grokjax.plan import PLANS

LENS = dict(measures=0.5, bdm=1.0, compile_measures=10.0, compile_bdm=5.0, llc_draw=0.01,
            compile_llc=8.0, causal_first=3.0)  # seconds, as calibrate_lenses measures them


def test_lens_fit_says_fits_or_by_how_much_it_exceeds():
  assert dryrun.lens_fit(3600.0, {"measures": 1200.0, "llc": 600.0}) == (
      "lenses / training: 0.5x (lenses 30m00s, training 1h00m): fits within the training time")
  assert dryrun.lens_fit(100.0, {"measures": 100.0}).endswith("1x (lenses 1m40s, training "
                                                              "1m40s): fits within the training time")
  assert dryrun.lens_fit(600.0, {"llc": 7200.0, "invariance": 600.0}).endswith(
      "13x (lenses 2h10m, training 10m00s): exceeds training by 13x")


def test_paper_dry_run_prints_the_fit_of_its_lens_plan(tmp_path, monkeypatch):
  train = dict(step=0.01, eval=0.5, compile_train=20.0, compile_eval=10.0)
  monkeypatch.setattr(dryrun, "calibrate_training", lambda cfg, devices: train)
  monkeypatch.setattr(dryrun, "calibrate_lenses", lambda cfg, plan, tmp: LENS)
  lines = []
  result = dryrun.dry_run(PRESETS["paper"], tmp_path / "run", plan=PLANS["paper"],
                          write=lines.append)
  stages = result["stages"]
  lenses = sum(v for k, v in stages.items() if k != "train")
  assert stages["train"] == pytest.approx(100_000 * 0.01 + result["counts"]["stops"] * 0.5 + 30)
  fit = [l for l in lines if l.startswith("lenses / training: ")]
  assert fit == [dryrun.lens_fit(stages["train"], {k: v for k, v in stages.items()
                                                   if k != "train"})]
  ratio = lenses / stages["train"]
  assert f"{ratio:.3g}x" in fit[0]
  assert fit[0].endswith(f"exceeds training by {ratio:.3g}x" if ratio > 1 else
                         "fits within the training time")
  assert lines.index(fit[0]) == len(lines) - 1  # after the stage times and their total
  assert not (tmp_path / "run").exists()
