"""Seconds from launch to the first progress line of the default rotation run, with the
persistent compilation cache in CACHE (a folder, or 'off').

  python benchmarks/bench_first_step.py /tmp/cache   # twice: the second run reads the cache
  python benchmarks/bench_first_step.py off
"""

import os
import subprocess
import sys
import tempfile
import time


def seconds_to_first_step(cache: str) -> float:
  with tempfile.TemporaryDirectory() as workdir:
    start = time.time()
    run = subprocess.Popen([sys.executable, "-m", "sslflax.main", "--config=configs/rotation.py",
                            f"--workdir={workdir}", "--config.log_every_steps=1",
                            f"--config.compilation_cache={cache}"],
                           stdout=subprocess.PIPE, text=True, env=dict(os.environ, XLA_FLAGS=""))
    try:
      for line in run.stdout:
        if "] step 1/" in line:
          return time.time() - start
      raise RuntimeError("the run ended before its first progress line")
    finally:
      run.kill()
      run.wait()


if __name__ == "__main__":
  cache = sys.argv[1] if len(sys.argv) > 1 else "off"
  print(f"{seconds_to_first_step(cache):.1f} s to the first step (compilation cache: {cache})")
