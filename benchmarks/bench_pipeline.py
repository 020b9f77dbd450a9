"""Host input-pipeline throughput (images/s): the embedded sample and a folder of JPEGs.

  python benchmarks/bench_pipeline.py [--size 224] [--batch 64] [--batches 40] [--jpegs 512]
      [--jpeg-side 320]
  taskset -c 0 python benchmarks/bench_pipeline.py   # per core: the rate one core gives

The folder is made in a temporary directory from the sample's photos (random
crops saved as JPEGs of --jpeg-side px, quality 90), built into TFDS once, then read like
any dataset. The host decodes, resizes and crops; augmentation runs on the device, inside
the jitted step, so it is not the host's work.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
from PIL import Image

from sslflax import data


def rate(ds, batches: int, batch: int) -> float:
  it = ds.as_numpy_iterator()
  next(it)  # start-up (file opening, first shuffle fill) is not throughput
  start = time.perf_counter()
  for _ in range(batches):
    next(it)
  return batches * batch / (time.perf_counter() - start)


def make_jpeg_folder(root: str, count: int, side: int = 320) -> None:
  photos = [np.asarray(Image.open(p)) for p in data.sample_builder._photo_files()]
  rng = np.random.default_rng(0)
  os.makedirs(root, exist_ok=True)
  for i in range(count):
    photo = photos[i % len(photos)]
    y, x = rng.integers(0, photo.shape[0] - 200), rng.integers(0, photo.shape[1] - 200)
    Image.fromarray(photo[y:y + 200, x:x + 200]).resize((side, side)).save(
        os.path.join(root, f"{i:05d}.jpg"), quality=90)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--batches", type=int, default=40)
  parser.add_argument("--jpegs", type=int, default=512)
  parser.add_argument("--jpeg-side", type=int, default=320)
  args = parser.parse_args()
  cores = len(os.sched_getaffinity(0))
  print(f"{cores} CPU core{'s' * (cores > 1)} for this process")
  common = dict(image_size=args.size, batch_size=args.batch, train=True, seed=0)
  sample = data.make_dataset(data.SAMPLE_PHOTOS, "train", **common)
  print(f"embedded sample ({data.SAMPLE_PHOTOS}) at {args.size} px: "
        f"{rate(sample, args.batches, args.batch):,.0f} images/s")
  with tempfile.TemporaryDirectory() as tmp:
    make_jpeg_folder(os.path.join(tmp, "jpegs"), args.jpegs, args.jpeg_side)
    folder = data.make_dataset(os.path.join(tmp, "jpegs"), "train", need_labels=False,
                               data_dir=os.path.join(tmp, "tfds"), **common)
    side = args.jpeg_side
    print(f"folder of {args.jpegs} {side}x{side} JPEGs at {args.size} px: "
          f"{rate(folder, args.batches, args.batch):,.0f} images/s")


if __name__ == "__main__":
  main()
