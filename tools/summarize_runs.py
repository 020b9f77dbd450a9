"""One markdown table from finished experiment workdirs: per tap, each run's difference from
random init in points and in standard errors of the difference (* beyond 2 SE), with its
wall time. The README's "Measured on the embedded sample" table is this script's output.

  python tools/summarize_runs.py workdir/rotation workdir/counting ... [--dataset NAME]
"""

from __future__ import annotations

import argparse
import json
import pathlib

MARK = "*"  # as sslflax.evaluate.stats (not imported: its package loads TensorFlow)


def cell(row: dict) -> str:
  """'+3.5 (+4.7)*': the difference in points and in SEs, marked beyond MARK_SE."""
  if "difference" not in row:
    return f"{row['top1']:.3f}"
  mark = MARK if row["marked"] else ""
  return f"{100 * row['difference']:+.1f} ({row['difference_in_se']:+.1f}){mark}"


def table(workdirs: list[pathlib.Path], dataset: str | None) -> str:
  """Rows (named by workdir): random init's top-1 (from the first run with a baseline; the minutes of a run
  named random), then each run's differences from it."""
  results = [dict(json.loads((w / "results.json").read_text()), run=w.name) for w in workdirs]
  dataset = dataset or next(iter(results[0]["comparison"]))
  taps = list(results[0]["comparison"][dataset])
  lines = [f"| run | minutes | {' | '.join(taps)} |", "|---" * (len(taps) + 2) + "|"]
  compared = [r for r in results if "random_top1" in next(iter(r["comparison"][dataset].values()))]
  minutes = [f"{r['wall_time_s'] / 60:.1f}" for r in results if r["experiment"] == "random"]
  if compared:
    rows = compared[0]["comparison"][dataset]
    baseline = " | ".join(f"{rows[t]['random_top1']:.3f}" for t in taps)
    lines.append(f"| random init (top-1) | {''.join(minutes[:1])} | {baseline} |")
  for result in compared:
    rows = result["comparison"][dataset]
    cells = " | ".join(cell(rows[t]) for t in taps)
    lines.append(f"| {result['run']} | {result['wall_time_s'] / 60:.1f} | {cells} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("workdirs", nargs="+", type=pathlib.Path)
  parser.add_argument("--dataset", default=None, help="downstream dataset (default: the first)")
  args = parser.parse_args()
  print(table(args.workdirs, args.dataset))


if __name__ == "__main__":
  main()
