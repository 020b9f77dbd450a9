"""How sure a probe result is: binomial standard errors and the comparison with random init.

A top-1 p measured on n test images has the binomial standard error sqrt(p (1 - p) / n).
A difference between two results on n test images is marked when it exceeds MARK_SE
standard errors of the difference, sqrt(se_a^2 + se_b^2): conservative, as if the two
had been measured on independent test sets (they share one, which would allow a paired
test). The standard error covers the test sample only, not the variation between
pretraining or probe seeds; the study's seeds show that.
"""

from __future__ import annotations

import math
from typing import Any

MARK_SE = 2.0  # differences beyond this many standard errors get a mark
MARK = "*"


def binomial_se(top1: float, n: int) -> float:
  """sqrt(p (1 - p) / n): the standard error of an accuracy measured on n images."""
  if n <= 0:
    raise ValueError(f"a standard error needs test images, got n={n}.")
  return math.sqrt(max(top1 * (1.0 - top1), 0.0) / n)


def difference_in_se(top1: float, baseline: float, n: int, n_baseline: int | None = None) -> float:
  """(top1 - baseline) in standard errors of the difference; 0 where both are exact."""
  se = math.hypot(binomial_se(top1, n), binomial_se(baseline, n_baseline or n))
  if se == 0:
    return 0.0 if top1 == baseline else math.copysign(math.inf, top1 - baseline)
  return (top1 - baseline) / se


def comparison(top1: dict[str, float], baseline: dict[str, float] | None, n: int
               ) -> dict[str, dict[str, Any]]:
  """Per tap: top-1 and its SE, and, with a baseline, its top-1, SE, the difference, the
  difference in SEs and whether it is marked (beyond MARK_SE)."""
  rows = {}
  for tap, value in top1.items():
    row = {"top1": value, "se": binomial_se(value, n)}
    if baseline is not None and tap in baseline:
      z = difference_in_se(value, baseline[tap], n)
      row.update(random_top1=baseline[tap], random_se=binomial_se(baseline[tap], n),
                 difference=value - baseline[tap], difference_in_se=z,
                 marked=bool(abs(z) > MARK_SE))
    rows[tap] = row
  return rows


def format_comparison(name: str, dataset: str, split: str, n: int,
                      rows: dict[str, dict[str, Any]], what: str = "linear probe") -> str:
  """A console table of `comparison` rows: this model beside random init, per tap (or
  fine-tune row)."""
  with_baseline = any("random_top1" in row for row in rows.values())
  lines = [f"{what} top-1 on {dataset} ({split}, {n} images), ± binomial SE" +
           (f"; {MARK} = differs from random init by more than {MARK_SE:g} SE of the difference"
            if with_baseline else "")]
  header = f"{'tap' if what == 'linear probe' else 'eval':<7}{name:>18}"
  if with_baseline:
    header += f"{'random init':>18}{'difference':>22}"
  lines.append(header)
  for tap, row in rows.items():
    line = f"{tap:<7}{row['top1']:>10.4f} ± {row['se']:.4f}"
    if "random_top1" in row:
      mark = f" {MARK}" if row["marked"] else ""
      line += (f"{row['random_top1']:>10.4f} ± {row['random_se']:.4f}"
               f"{row['difference']:>+11.4f} ({row['difference_in_se']:+.1f} SE){mark}")
    lines.append(line)
  return "\n".join(lines)
