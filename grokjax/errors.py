"""Errors a user can act on, and the exit status each one ends a command-line run with.

Every problem caused by input (a flag, a config, a run folder) raises a subclass of
`GrokjaxError`; the command-line entry points (grokjax.cli.run_main) print its
message as one line and exit with its `exit_code` instead of showing a traceback
from deep inside JAX:

  0  EXIT_OK         finished
  2  EXIT_BAD_INPUT  a flag, config, run folder, checkpoint or distributed-job problem
  3  EXIT_DIVERGED   finished, but one or more runs produced a non-finite loss; every
                     run's data and the other runs' results are in the folder

(absl itself exits 1 on a flag it cannot parse, before any of this runs.)
"""

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class GrokjaxError(Exception):
  """Base class for errors caused by user input or by the state of a run folder."""

  exit_code = EXIT_BAD_INPUT


class ConfigError(GrokjaxError, ValueError):
  """A configuration value is invalid."""


class RunFolderError(GrokjaxError):
  """A run folder is missing, already exists, or does not match the config."""


class CheckpointError(GrokjaxError):
  """A checkpoint is missing or cannot be read."""


class DivergenceError(GrokjaxError):
  """One or more runs produced a non-finite loss (raised once every run's data is written)."""

  exit_code = EXIT_DIVERGED


class DistributedError(GrokjaxError):
  """The processes of a multi-process sweep disagree, or one of them is gone."""
