"""keep_freed_memory: XLA's large host buffers come from the reused heap, not fresh mappings."""

import ctypes
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
if sys.argv[1] == "tuned":
  from sslflax.hostmem import keep_freed_memory
  assert keep_freed_memory()
import jax, jax.numpy as jnp

class MallInfo2(ctypes.Structure):
  _fields_ = [(name, ctypes.c_size_t) for name in (
      "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
      "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = MallInfo2
big = jax.jit(lambda x: jnp.broadcast_to(x, (64, 1024, 1024)))(jnp.float32(1))  # 256 MiB
big.block_until_ready()
print(mallinfo2().hblkhd)  # bytes held in separately mapped blocks
"""


def mapped_bytes(mode: str) -> int:
  out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                       check=True)
  return int(out.stdout.split()[-1])


def test_large_xla_buffers_come_from_the_heap_once_tuned():
  try:
    ctypes.CDLL("libc.so.6").mallinfo2
  except (OSError, AttributeError):
    pytest.skip("needs glibc 2.33 or later")
  assert mapped_bytes("default") >= 256 << 20  # glibc maps (and later unmaps) the buffer
  assert mapped_bytes("tuned") < 256 << 20  # served from the heap, kept after free
