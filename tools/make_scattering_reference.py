"""Build tests/reference/scattering_kymatio_32px.npz: kymatio's Scattering2D (its numpy
frontend) on two 32 x 32 images, the reference `tests/test_scattering.py` holds
sslflax.models.scattering.scattering2d to.

  pip install kymatio   # once, anywhere: CI never needs it
  python tools/make_scattering_reference.py

kymatio 0.3's `kymatio.numpy` imports its 3D module, which fails on scipy >= 1.15
(scipy.special.sph_harm is gone); the 2D numpy frontend, imported directly, works.
"""

from __future__ import annotations

import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "reference" / "scattering_kymatio_32px.npz"
SIDE, J, L, SEED = 32, 2, 8, 0


def reference_inputs() -> np.ndarray:
  """Two (32, 32) images: smooth structure (a bar and a disc) plus seeded noise, in [0, 1]."""
  rng = np.random.default_rng(SEED)
  yy, xx = np.mgrid[:SIDE, :SIDE]
  bar = ((xx > 8) & (xx < 13)).astype(np.float32)
  disc = (((yy - 20) ** 2 + (xx - 18) ** 2) < 36).astype(np.float32)
  noise = rng.uniform(0, 0.3, (2, SIDE, SIDE)).astype(np.float32)
  return np.clip(np.stack([bar, disc]) * 0.7 + noise, 0, 1).astype(np.float32)


def main() -> None:
  import kymatio
  from kymatio.scattering2d.frontend.numpy_frontend import ScatteringNumPy2D
  x = reference_inputs()
  out = ScatteringNumPy2D(J=J, shape=(SIDE, SIDE), L=L)(x)
  np.savez_compressed(OUT, inputs=x, scattering=out.astype(np.float32), J=J, L=L,
                      kymatio=kymatio.__version__)
  print(f"wrote {OUT}: {out.shape}")


if __name__ == "__main__":
  main()
