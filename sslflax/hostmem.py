"""Keep freed host memory in the process, so XLA:CPU does not page in its buffers afresh each step.

XLA:CPU allocates every step's buffers with malloc and frees them after the step. With glibc's
defaults, blocks above the mmap threshold (at most 32 MiB) are mapped fresh from the kernel and
unmapped again on free, and the arenas of XLA's worker threads give freed memory back too, so
every step pays for page faults over much of its memory. Serving all threads from one heap that
is never trimmed removes that cost (trimming is off altogether, not merely above 2 GiB: a 224 px
AlexNet-BN rotation step frees more than that at once, and with a 2**31 - 1 threshold it
page-faulted 300,000 times a step, 2.3 s of kernel time); `python benchmarks/bench_counting.py
[--default-malloc]` shows it (at 224 px, converting a batch of 128 to float32 ran at 32,032
img/s kept, 6,220 default).

The one heap fragments where a step's buffers vary more: a ViT-Ti rotation step at batch 16
peaks at 5.5 GB kept against 2.3 GB with glibc's defaults (benchmarks/bench_step_memory.py),
and ViT-Ti runs at batch 64 were killed for memory at 24 GB. SSLFLAX_MALLOC=default leaves
glibc's malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# mallopt parameters from glibc's <malloc.h>.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
_SETTINGS = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, -1),
             (_M_TOP_PAD, 512 << 20))
ENV_VAR = "SSLFLAX_MALLOC"  # 'default': glibc's malloc as it is


def keep_freed_memory() -> bool:
  """Tune glibc malloc to reuse freed memory instead of returning it to the kernel.

  Call it before JAX first touches a device (it creates its worker threads then); later
  calls still help blocks allocated from the main thread. Returns False, changing nothing,
  where the C library is not glibc (macOS, musl), or where SSLFLAX_MALLOC=default. The cost:
  the process keeps its peak host memory until it exits, as with tcmalloc or jemalloc.
  """
  if os.environ.get(ENV_VAR, "").lower() == "default":
    return False
  try:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    mallopt = libc.mallopt
  except (OSError, AttributeError):
    return False
  return all(mallopt(option, value) == 1 for option, value in _SETTINGS)
