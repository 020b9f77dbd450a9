"""Errors a user can fix. The command line prints each as one line and exits with status 2;
anything else is a bug and keeps its traceback."""

from __future__ import annotations


class UserError(Exception):
  """A problem in what the user asked for, with what to do about it in the message."""


class ConfigError(UserError, ValueError):
  """A config value that cannot work (unknown name, out of range, inconsistent)."""


class DatasetError(UserError, ValueError):
  """A dataset that cannot be used as asked: missing, unprepared, wrong split, size or content."""


class WorkdirError(UserError):
  """A workdir that cannot be used: another run's, unwritable, or out of space."""


class CheckpointError(UserError):
  """No usable checkpoint where one is needed."""
