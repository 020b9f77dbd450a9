"""Seconds from launch to the first progress line of the default rotation run, with the
persistent compilation cache in CACHE (a folder, or 'off'), and their two parts: launch to
the run's header line (imports of TensorFlow, JAX and Flax and the devices: no compilation)
and the header to step 1 (datasets, tracing, compilation or the cache's programs, one step).

  python benchmarks/bench_first_step.py /tmp/cache   # twice: the second run reads the cache
  python benchmarks/bench_first_step.py off
"""

import os
import subprocess
import sys
import tempfile
import time


def seconds_to_first_step(cache: str) -> tuple[float, float]:
  """(launch to the header line, launch to step 1) in seconds."""
  with tempfile.TemporaryDirectory() as workdir:
    start, header = time.time(), None
    run = subprocess.Popen([sys.executable, "-m", "sslflax.main", "--config=configs/rotation.py",
                            f"--workdir={workdir}", "--config.log_every_steps=1",
                            f"--config.compilation_cache={cache}"],
                           stdout=subprocess.PIPE, text=True, env=dict(os.environ, XLA_FLAGS=""))
    try:
      for line in run.stdout:
        if header is None and "] pretrain " in line:
          header = time.time() - start
        if "] step 1/" in line:
          return header if header is not None else float("nan"), time.time() - start
      raise RuntimeError("the run ended before its first progress line")
    finally:
      run.kill()
      run.wait()


if __name__ == "__main__":
  cache = sys.argv[1] if len(sys.argv) > 1 else "off"
  header, first = seconds_to_first_step(cache)
  print(f"{first:.1f} s to the first step (compilation cache: {cache}): {header:.1f} s to the "
        f"run's header (imports, devices), then {first - header:.1f} s to step 1")
