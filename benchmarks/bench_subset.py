"""Seconds for one pass over a seeded class-balanced subset (records selected by tfds_id,
images decoded only after the selection).

  python benchmarks/bench_subset.py [--dataset sslflax_sample/fashion_pool] [--size 2000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

from sslflax.data.pipeline import make_dataset


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--dataset", default="sslflax_sample/fashion_pool")
  parser.add_argument("--split", default="train")
  parser.add_argument("--size", type=int, default=2000)
  parser.add_argument("--image-size", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()
  for _ in range(args.repeats):
    start = time.time()
    ds = make_dataset(args.dataset, args.split, image_size=args.image_size, batch_size=256,
                      train=False, subset_size=args.size)
    count = sum(len(batch["label"]) for batch in ds.as_numpy_iterator())
    print(f"{args.dataset} {args.split}: subset of {count} in {time.time() - start:.2f} s")


if __name__ == "__main__":
  main()
