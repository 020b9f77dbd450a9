"""JAX's persistent compilation cache, on by default.

A step compiles in 5-15 s on a CPU. With the cache, a second run of the same config (a study
cell, a resumed run, a rerun of the tests) loads its compiled programs from disk instead.

Where it lives, first match wins:
  1. the `setting` passed to `enable` (the config's `compilation_cache` field);
  2. the environment variable SSLFLAX_COMPILATION_CACHE;
  3. $XDG_CACHE_HOME/sslflax/jax (by default ~/.cache/sslflax/jax).
"off" (or "0", "none", "false") in the first of them that is set turns the cache off.
"""

from __future__ import annotations

import os

ENV_VAR = "SSLFLAX_COMPILATION_CACHE"
OFF = ("off", "0", "none", "false", "no")
MAX_BYTES = 4 * 2 ** 30  # least recently used programs are evicted beyond this
# Programs that compile faster are not stored: an eager op's few milliseconds cost less than
# the cache's file lock and write (which slowed eager-heavy tests by a quarter at 0 s).
MIN_COMPILE_SECONDS = 0.1


def default_dir() -> str:
  base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
  return os.path.join(base, "sslflax", "jax")


def cache_dir(setting: str | None = None) -> str | None:
  """The folder the cache uses, or None when it is turned off."""
  for value in (setting, os.environ.get(ENV_VAR)):
    if value is not None and value != "":
      return None if value.strip().lower() in OFF else os.path.expanduser(value)
  return default_dir()


def enable(setting: str | None = None) -> str | None:
  """Point JAX's persistent cache at `cache_dir(setting)` for every program that took
  MIN_COMPILE_SECONDS or more to compile. Returns the folder, or None when off.
  Idempotent; an unwritable folder turns the cache off instead of failing the run. JAX
  opens its cache once per process: call this before the first compilation."""
  import jax
  path = cache_dir(setting)
  if path is not None:
    try:
      os.makedirs(path, exist_ok=True)
    except OSError:
      path = None
  jax.config.update("jax_enable_compilation_cache", path is not None)
  if path is not None:
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
  return path
