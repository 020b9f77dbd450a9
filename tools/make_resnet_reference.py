"""Build tests/reference/resnet_torchvision_64px.npz: torchvision's ResNet-18 and ResNet-50 on
drawn weights, the reference `tests/test_resnet.py` holds sslflax's ResNets to.

  pip install torch torchvision   # once, anywhere: CI never needs torch
  python tools/make_resnet_reference.py

Weights are drawn from a seeded numpy generator by `draw_weight`, in the order of
torchvision's state_dict; the file keeps that order (names and shapes), one input image and
the first CHANNELS channels of each stage's output (res2..res5) and the pooled features. The
test draws the same weights from the stored names, maps them onto sslflax's parameter tree
and compares, so it needs no torch.
"""

from __future__ import annotations

import pathlib

import numpy as np

OUT = pathlib.Path(__file__).resolve().parents[1] / "tests" / "reference" / "resnet_torchvision_64px.npz"
SIDE = 64
CHANNELS = 32  # of each stage's map: enough to see a pixel's shift, and a small file
SEED = 0


def draw_weight(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
  """One torchvision state_dict entry: He-normal convolutions, BN scales and running variances
  uniform in [0.5, 1.5], BN biases and running means normal with sd 0.1 (so that inference-mode
  BN is no identity)."""
  if len(shape) == 4:
    return rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape).astype(np.float32)
  if name.endswith(("running_var", "weight")):
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  return rng.normal(0.0, 0.1, shape).astype(np.float32)  # bias, running_mean


def drawn(name: str) -> bool:
  """The entries that are drawn: not the fc head, not BN's step counters."""
  return not name.startswith("fc.") and not name.endswith("num_batches_tracked")


def import_torchvision():
  """torchvision, also where its compiled ops do not match the installed torch (only the
  pure-PyTorch model code is used here)."""
  import torch
  register_fake = torch.library.register_fake

  def lenient(name, *args, **kwargs):
    if isinstance(name, str) and name.startswith("torchvision::"):
      return lambda fn: fn
    return register_fake(name, *args, **kwargs)

  torch.library.register_fake = lenient
  import torchvision
  return torch, torchvision


def main() -> None:
  torch, torchvision = import_torchvision()
  rng = np.random.default_rng(SEED)
  image = rng.normal(0.0, 1.0, (1, SIDE, SIDE, 3)).astype(np.float32)  # NHWC, standardised
  arrays = {"image": image}
  for arch in ("resnet18", "resnet50"):
    net = getattr(torchvision.models, arch)().eval()
    state = net.state_dict()
    names = [n for n in state if drawn(n)]
    weights = np.random.default_rng(SEED)
    net.load_state_dict({n: torch.from_numpy(draw_weight(n, tuple(state[n].shape), weights))
                         if drawn(n) else state[n] for n in state})
    outputs = {}
    x = torch.from_numpy(image.transpose(0, 3, 1, 2))
    with torch.no_grad():
      x = net.maxpool(net.relu(net.bn1(net.conv1(x))))
      for stage in range(1, 5):
        x = getattr(net, f"layer{stage}")(x)
        outputs[f"res{stage + 1}"] = x.numpy().transpose(0, 2, 3, 1)[..., :CHANNELS]
      outputs["pool5"] = torch.flatten(net.avgpool(x), 1).numpy()
    arrays[f"{arch}/names"] = np.array(names)
    arrays[f"{arch}/shapes"] = np.array([",".join(map(str, state[n].shape)) for n in names])
    arrays.update({f"{arch}/{tap}": value for tap, value in outputs.items()})
    print(arch, {tap: value.shape for tap, value in outputs.items()})
  OUT.parent.mkdir(exist_ok=True)
  np.savez_compressed(OUT, **arrays, torch_version=np.array(torch.__version__),
                      torchvision_version=np.array(torchvision.__version__))
  print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes; torch {torch.__version__}, "
        f"torchvision {torchvision.__version__})")


if __name__ == "__main__":
  main()
