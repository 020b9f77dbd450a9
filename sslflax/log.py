"""sslflax's one output channel: the `sslflax` logger (Python's logging).

Every line a run shows (its plan, progress, probe results, tables, warnings) is a record of
this logger. By default they print to stdout, as plain lines, on process 0 of a job (the
other processes show warnings only: `quiet_unless_first_process`). A library user changes
that the usual way (`logging.getLogger("sslflax").setLevel(logging.WARNING)` silences a
run), or for a block with `redirect`: `with redirect(lines.append): experiment.run(...)`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Callable, Iterator

log = logging.getLogger("sslflax")


class ConsoleHandler(logging.StreamHandler):
  """The message alone, to the sys.stdout of the moment (a notebook's or pytest's
  replacement too), flushed after every line."""

  def __init__(self):
    super().__init__(sys.stdout)
    self.setFormatter(logging.Formatter("%(message)s"))

  def emit(self, record: logging.LogRecord) -> None:
    self.stream = sys.stdout
    super().emit(record)


def _install() -> None:
  if not any(isinstance(h, ConsoleHandler) for h in log.handlers):
    log.addHandler(ConsoleHandler())
  log.setLevel(logging.INFO)
  log.propagate = False  # absl's root handler would print every line again


class _SinkHandler(logging.Handler):
  def __init__(self, sink: Callable[[str], object]):
    super().__init__()
    self.sink = sink

  def emit(self, record: logging.LogRecord) -> None:
    self.sink(record.getMessage())  # what it raises (a test's simulated kill) goes through


@contextlib.contextmanager
def redirect(sink: Callable[[str], object] | None) -> Iterator[None]:
  """Inside the block, each sslflax line goes to `sink(line)` instead of the console (None:
  nowhere), at INFO level; the handlers and level before it come back after."""
  saved, level = log.handlers[:], log.level
  log.handlers = [_SinkHandler(sink) if sink is not None else logging.NullHandler()]
  log.setLevel(logging.INFO)
  try:
    yield
  finally:
    log.handlers, log.level = saved, level


def quiet_unless_first_process() -> None:
  """Progress and results from process 0 only; the other processes keep their warnings."""
  import jax
  log.setLevel(logging.INFO if jax.process_index() == 0 else logging.WARNING)


_install()
