"""The checkpoint trigger's thresholds: a number > 0 or unset (None: off); 0 and negative
values are bad input, except a 0 in an existing run folder's config.json (the old "off")."""

import dataclasses
import json

import pytest

from grokjax import ckpt_schedule, runio
from grokjax.config import PRESETS, SweepConfig
from grokjax.errors import ConfigError, RunFolderError
from tests.test_cli_inputs import assert_one_error_line, run_cli


def test_off_is_unset_and_the_presets_keep_their_trigger():
  assert SweepConfig().ckpt_trigger_acc is None and SweepConfig().ckpt_trigger_loss is None
  assert not ckpt_schedule.Trigger.of(PRESETS["tiny"]).on
  paper = PRESETS["paper"]
  assert paper.ckpt_trigger_acc == 0.05 and paper.ckpt_trigger_loss is None
  assert ckpt_schedule.Trigger.of(paper) == ckpt_schedule.Trigger(acc=0.05)
  for cfg in (PRESETS["tiny"], paper):  # config.json round trips, None as null
    d = json.loads(json.dumps(cfg.to_dict()))
    assert SweepConfig.from_dict(d) == cfg


@pytest.mark.parametrize("value", [0.0, -0.05, float("nan"), float("inf")])
@pytest.mark.parametrize("name", ["ckpt_trigger_acc", "ckpt_trigger_loss"])
def test_zero_negative_and_non_finite_thresholds_are_refused(name, value):
  cfg = dataclasses.replace(PRESETS["tiny"], **{name: value})
  with pytest.raises(ConfigError, match=f"{name} must be finite and > 0 \\(leave it unset"):
    cfg.validate()


def test_an_old_config_json_with_zero_reads_as_off(tmp_path):
  cfg = PRESETS["tiny"]
  runio.write_config(tmp_path, cfg, ["cpu"])
  path = tmp_path / "config.json"
  record = json.loads(path.read_text())
  record["config"].update(ckpt_trigger_acc=0.0, ckpt_trigger_loss=0)  # as folders wrote it
  path.write_text(json.dumps(record))
  loaded = runio.load_config(tmp_path)
  assert loaded.ckpt_trigger_acc is None and loaded.ckpt_trigger_loss is None
  assert loaded == cfg
  runio.check_same_config(tmp_path, cfg, hint="")  # resumes as the same sweep
  record["config"]["ckpt_trigger_acc"] = -0.1  # still bad input in a folder
  path.write_text(json.dumps(record))
  with pytest.raises(RunFolderError, match="config.json: ckpt_trigger_acc must be finite and > 0"):
    runio.load_config(tmp_path)


def test_flags_turn_the_trigger_off_or_refuse_zero():
  import types

  from grokjax.cli import SWEEP_LIST_FLAGS, SWEEP_SCALAR_FLAGS, sweep_config_from_flags

  def flags(**given):
    names = [*SWEEP_LIST_FLAGS, *SWEEP_SCALAR_FLAGS, "lr", "train_frac", "ckpt_trigger_off"]
    return types.SimpleNamespace(**{**{n: None for n in names}, **given})

  assert sweep_config_from_flags(flags(), "paper").ckpt_trigger_acc == 0.05
  off = sweep_config_from_flags(flags(ckpt_trigger_off=True), "paper")
  assert off.ckpt_trigger_acc is None and not ckpt_schedule.Trigger.of(off).on
  with pytest.raises(ConfigError, match="--ckpt_trigger_off and --ckpt_trigger_acc contradict"):
    sweep_config_from_flags(flags(ckpt_trigger_off=True, ckpt_trigger_acc=0.1), "paper")
  with pytest.raises(ConfigError, match="ckpt_trigger_loss must be finite and > 0"):
    sweep_config_from_flags(flags(ckpt_trigger_loss=0.0), "tiny")


@pytest.mark.parametrize("value", ["0", "-0.05"])
def test_train_cli_refuses_a_zero_or_negative_trigger_and_writes_nothing(tmp_path, value):
  out = tmp_path / "run"
  proc = run_cli("train", "--preset=tiny", f"--ckpt_trigger_acc={value}", f"--out={out}")
  assert_one_error_line(proc, f"ckpt_trigger_acc must be finite and > 0 (leave it unset for no "
                              f"trigger), got {float(value)}")
  assert not out.exists()
