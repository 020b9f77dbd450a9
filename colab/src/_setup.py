# Set-up. On Colab: clone and install sslflax (skipped when it is already importable).
import importlib.util, os, pathlib, sys
SSLFLAX_GIT = "https://github.com/sslflax/sslflax.git"  # this repository (change it for a fork)
if importlib.util.find_spec("sslflax") is None:
  # !git clone -q --depth 1 {SSLFLAX_GIT} /content/sslflax
  # !pip install -q -e /content/sslflax ml-collections chex
  sys.path.insert(0, "/content/sslflax")
# Work from the repository root, where configs/ lives.
ROOT = next(p for p in (pathlib.Path.cwd(), *pathlib.Path.cwd().parents, pathlib.Path("/content/sslflax"))
            if (p / "configs" / "common.py").exists())
os.chdir(ROOT)
# SSLFLAX_NOTEBOOK_SMOKE=1 (CI) runs the same cells with tiny networks and a few steps.
SMOKE = os.environ.get("SSLFLAX_NOTEBOOK_SMOKE") == "1"
from sslflax.hostmem import keep_freed_memory
keep_freed_memory()  # before JAX starts: faster steps on a CPU runtime (see sslflax/hostmem.py)
import jax  # sslflax.data keeps TensorFlow (tf.data) off the GPU, so JAX gets it all
print("JAX devices:", jax.devices(), "| smoke run" if SMOKE else "")
