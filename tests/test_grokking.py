"""End to end: a tiny model memorises first and generalises much later."""

import pytest

from grokjax import runio, sweep
from grokjax.config import PRESETS


@pytest.mark.slow
def test_tiny_model_really_groks(tmp_path):
  cfg = PRESETS["tiny"]  # x + y mod 23, wd 1, 1,500 steps
  summary = sweep.train_sweep(cfg, tmp_path, write=lambda s: None)
  fit, grok = summary[0]["train_acc_099_step"], summary[0]["test_acc_099_step"]
  assert grok != "", "the tiny model did not reach test accuracy 0.99"
  assert fit != "" and grok - fit >= 300, (fit, grok)  # generalisation lags memorisation
  m = runio.read_csv(tmp_path / "metrics.csv")
  at_fit = m["test_acc"][m["step"] == fit][0]
  assert at_fit < 0.8  # when the train set is memorised the test set is not yet solved
