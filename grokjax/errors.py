"""Errors a user can act on.

Every problem caused by input (a flag, a config, a run folder) raises a subclass of
`GrokjaxError`; the command-line entry points print its message as one line and
exit non-zero instead of showing a traceback from deep inside JAX.
"""


class GrokjaxError(Exception):
  """Base class for errors caused by user input or by the state of a run folder."""


class ConfigError(GrokjaxError, ValueError):
  """A configuration value is invalid."""


class RunFolderError(GrokjaxError):
  """A run folder is missing, already exists, or does not match the config."""


class CheckpointError(GrokjaxError):
  """A checkpoint is missing or cannot be read."""


class DivergenceError(GrokjaxError):
  """One or more runs produced a non-finite loss."""


class DistributedError(GrokjaxError):
  """The processes of a multi-process sweep disagree, or one of them is gone."""
