"""keep_freed_memory: XLA's large host buffers come from the reused heap, not fresh mappings."""

import ctypes
import os
import subprocess
import sys

import pytest

MALLINFO2 = """
class MallInfo2(ctypes.Structure):
  _fields_ = [(name, ctypes.c_size_t) for name in (
      "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
      "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = MallInfo2
"""

PROBE = """
import ctypes, sys
tuned = False
if sys.argv[1] == "tuned":
  from sslflax.hostmem import keep_freed_memory
  tuned = keep_freed_memory()
import jax, jax.numpy as jnp
""" + MALLINFO2 + """
big = jax.jit(lambda x: jnp.broadcast_to(x, (64, 1024, 1024)))(jnp.float32(1))  # 256 MiB
big.block_until_ready()
print(tuned, mallinfo2().hblkhd)  # bytes held in separately mapped blocks
"""


def mapped_bytes(mode: str, env: dict | None = None) -> int:
  """Bytes glibc holds in mapped blocks after a 256 MiB XLA buffer; `mode` 'tuned' calls
  keep_freed_memory first, which must say whether it changed malloc."""
  out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                       check=True, env=env)
  tuned, mapped = out.stdout.split()[-2:]
  assert tuned == str(mode == "tuned" and (env or {}).get("SSLFLAX_MALLOC") != "default")
  return int(mapped)


def test_large_xla_buffers_come_from_the_heap_once_tuned():
  try:
    ctypes.CDLL("libc.so.6").mallinfo2
  except (OSError, AttributeError):
    pytest.skip("needs glibc 2.33 or later")
  assert mapped_bytes("default") >= 256 << 20  # glibc maps (and later unmaps) the buffer
  assert mapped_bytes("tuned") < 256 << 20  # served from the heap, kept after free


def test_sslflax_malloc_default_leaves_glibc_as_it_is():
  """The opt-out for runs whose buffers fragment the one heap (docs/troubleshooting.md)."""
  try:
    ctypes.CDLL("libc.so.6").mallinfo2
  except (OSError, AttributeError):
    pytest.skip("needs glibc 2.33 or later")
  assert mapped_bytes("tuned", dict(os.environ, SSLFLAX_MALLOC="default")) >= 256 << 20


TRIM_PROBE = """
import ctypes
from sslflax.hostmem import keep_freed_memory
assert keep_freed_memory()
import jax, jax.numpy as jnp
""" + MALLINFO2 + """
big = jax.jit(lambda x: jnp.broadcast_to(x, (9, 64, 1024, 1024)))(jnp.float32(1))  # 2.25 GiB
big.block_until_ready()
del big
print(mallinfo2().arena)  # bytes of heap glibc still holds
"""


def test_more_than_2_gib_freed_at_once_stays_in_the_heap():
  """A 224 px AlexNet-BN step frees more than 2 GiB at once; trimmed, it page-faulted 300,000
  times a step (sslflax/hostmem.py)."""
  try:
    ctypes.CDLL("libc.so.6").mallinfo2
  except (OSError, AttributeError):
    pytest.skip("needs glibc 2.33 or later")
  out = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True,
                       check=True)
  assert int(out.stdout.split()[-1]) >= 9 << 28, out.stdout
