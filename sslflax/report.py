"""The study's report: results.csv, Markdown tables like the seed paper's, and PNG figures.

Pure functions turn rows into tables; `write_report` puts them in the study's workdir.
Every probe result stands beside random init's on the same downstream set, tap and seeds,
with its binomial standard error over the test images (sslflax.evaluate.stats); a mark
shows a difference beyond 2 standard errors of the difference. With several seeds, a
result is the mean over seeds and its SE is over all their test predictions.
Sensitivity follows the seed paper (its Figure 4): for each downstream dataset the standard
deviation (numpy's, ddof=0) of accuracy across the pretraining-set sizes, averaged over the
datasets; with several seeds it is computed per seed and reported as mean +- sample std.
"""

from __future__ import annotations

import csv
import os
from typing import Any, Iterable

import numpy as np

from sslflax.evaluate import stats
from sslflax.models import all_taps, get_backbone, registered_backbones
from sslflax.results import RANDOM_INIT
from sslflax.log import log

CSV_FIELDS = ("experiment", "task", "pretrain_size", "downstream", "tap", "seed", "top1",
              "test_images", "pretrain_steps", "pretext_loss", "wall_time_s", "label_fraction")

# The seed paper's published numbers (Macar & Liu, Columbia: its Figure 5), keyed by our experiment and dataset names:
# accuracy averaged over ImageNet 30K/60K/120K, and sensitivity across those sizes.
PAPER_ACCURACY = {
    "supervised": {"cifar10": .744, "svhn_cropped": .815, "oxford_flowers102": .752},
    "rotation": {"cifar10": .721, "svhn_cropped": .801, "oxford_flowers102": .639},
    "counting": {"cifar10": .723, "svhn_cropped": .785, "oxford_flowers102": .646},
    "jigsaw": {"cifar10": .704, "svhn_cropped": .784, "oxford_flowers102": .713},
    "context": {"cifar10": .705, "svhn_cropped": .806, "oxford_flowers102": .644},
    "colorize": {"cifar10": .699, "svhn_cropped": .787, "oxford_flowers102": .719},
    "random": {"cifar10": .601, "svhn_cropped": .781, "oxford_flowers102": .541},
}
PAPER_SENSITIVITY = {"supervised": .046, "colorize": .031, "jigsaw": .025, "context": .023,
                     "counting": .014, "rotation": .007}
TAP_ORDER = all_taps()  # every registered backbone's taps (probes), in the backbones' order
# Fine-tunes (the 'tap' column): freeze0..freezeN of the deepest registered backbone.
FREEZE_ORDER = tuple(f"freeze{layer}" for layer in range(
    1 + max(len(get_backbone(name).layers) for name in registered_backbones())))
SEED_PROTOCOL = "freeze3"  # the seed's Figure 5: fine-tuned above a frozen conv3
# What the seed's two baselines were, beside ours (its finetune.py).
PAPER_BASELINES = {
    "supervised": "seed: torchvision's AlexNet trained on all of ImageNet; ours: AlexNet-BN "
                  "trained with labels on the same subset as the pretext tasks",
    "random": "seed: torchvision's AlexNet without BN at random init; ours: AlexNet-BN at "
              "random init (with fc6-fc7 when fine-tuned)",
}


def rows_from_results(cell, results: dict[str, Any]) -> list[dict[str, Any]]:
  """One row per (downstream dataset, tap) of a finished cell.

  pretrain_size is the number of source images the cell pretrained on (its subset, the
  whole split, or 1 image); None for random init. label_fraction is None where the probe
  trained on every label.
  """
  pretext = results.get("pretext", {})
  size = None if cell.size is None else pretext.get("source_images") or cell.size
  rows = []
  for downstream, taps in results["linear_eval"].items():
    for tap, top1 in taps.items():
      rows.append({
          "experiment": cell.experiment, "task": results["task"], "pretrain_size": size,
          "downstream": downstream, "tap": tap, "seed": cell.seed, "top1": top1,
          "test_images": results["test_images"][downstream],
          "pretrain_steps": pretext.get("steps", 0),
          "pretext_loss": pretext.get("final_metrics", {}).get("loss"),
          "wall_time_s": round(results["wall_time_s"], 1),
          "label_fraction": getattr(cell, "fraction", None)})
  return rows


def main_tap(rows: list[dict[str, Any]]) -> str:
  """conv3, the seed paper's tap, when it was probed; else the first tap."""
  taps = {r["tap"] for r in rows}
  return "conv3" if "conv3" in taps else sorted(taps)[0]


def freeze_label(tap: str, backbone: str = "alexnet_bn") -> str:
  """'freeze3' -> 'conv1..conv3 frozen' (the backbone's own layer names)."""
  return get_backbone(backbone).freeze_label(int(tap[len("freeze"):]))


def taps_of(rows, dataset: str, order: tuple[str, ...]) -> list[str]:
  """The rows' taps on `dataset` that `order` names (TAP_ORDER: probes; FREEZE_ORDER:
  fine-tunes), in that order. A probe tap no registered backbone names (rows of a backbone
  since renamed) follows the probe taps, so a table never drops it without a word."""
  present = {r["tap"] for r in rows if r["downstream"] == dataset}
  taps = [t for t in order if t in present]
  if set(order) & set(TAP_ORDER):
    taps += sorted(present - set(TAP_ORDER) - set(FREEZE_ORDER))
  return taps


def mean_top1(rows, experiment: str, tap: str, size: int | None = None) -> float:
  """Mean top-1 of an experiment at a tap, over datasets, seeds and (unless `size`) sizes.

  Random init's rows (size None) count at every size. NaN where there are no rows.
  """
  accs = [r["top1"] for r in rows if (r["experiment"], r["tap"]) == (experiment, tap)
          and (size is None or r["pretrain_size"] in (size, None))]
  return float(np.mean(accs)) if accs else float("nan")


def pretrain_sizes(rows) -> list[int]:
  return sorted({r["pretrain_size"] for r in rows if r["pretrain_size"] is not None})


def _fmt_value(value: float) -> str:
  return "—" if np.isnan(value) else f"{value:.3f}"


def _ordered(values: Iterable, order: Iterable = ()) -> list:
  values = set(values)
  return [v for v in order if v in values] + sorted(values - set(order), key=str)


def accuracy_means(rows, tap: str) -> dict[str, dict[str, tuple[float, float, int]]]:
  """{experiment: {downstream: (mean, std over seeds, seeds)}}, each seed averaged over sizes."""
  table: dict[str, dict[str, tuple[float, float, int]]] = {}
  for experiment in {r["experiment"] for r in rows}:
    for downstream in {r["downstream"] for r in rows}:
      per_seed = {}
      for r in rows:
        if (r["experiment"], r["downstream"], r["tap"]) == (experiment, downstream, tap):
          per_seed.setdefault(r["seed"], []).append(r["top1"])
      if per_seed:
        table.setdefault(experiment, {})[downstream] = _mean_std([np.mean(v) for v in per_seed.values()])
  return table


def sensitivity(rows, tap: str) -> dict[str, tuple[float, float, int]]:
  """{experiment: (mean, std over seeds, seeds)} of the paper's sensitivity (module docstring).

  Experiments evaluated at fewer than two pretraining sizes (random init) have none.
  """
  out = {}
  for experiment in {r["experiment"] for r in rows}:
    mine = [r for r in rows if r["experiment"] == experiment and r["tap"] == tap]
    if len({r["pretrain_size"] for r in mine}) < 2:
      continue
    per_seed = []
    for seed in sorted({r["seed"] for r in mine}):
      stds = []
      for downstream in sorted({r["downstream"] for r in mine}):
        accs = [r["top1"] for r in mine if (r["seed"], r["downstream"]) == (seed, downstream)]
        stds.append(np.std(accs))
      per_seed.append(float(np.mean(stds)))
    out[experiment] = _mean_std(per_seed)
  return out


def _mean_std(values) -> tuple[float, float, int]:
  values = np.asarray(values, np.float64)
  std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
  return float(np.mean(values)), std, len(values)


def _fmt(stat: tuple[float, float, int] | None) -> str:
  if stat is None:
    return "—"
  mean, std, n = stat
  return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def _markdown(header: list[str], body: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(row) + " |" for row in body]
  return "\n".join(lines)


def accuracy_table(rows, tap: str, experiments: list[str], datasets: list[str]) -> str:
  """The paper's Figure 5: accuracy per downstream dataset and their mean, per experiment."""
  means = accuracy_means(rows, tap)
  body = []
  for e in experiments:
    cells = [means.get(e, {}).get(d) for d in datasets]
    done = [c[0] for c in cells if c is not None]
    mean = (float(np.mean(done)), 0.0, 1) if len(done) == len(datasets) else None
    body.append([e] + [_fmt(c) for c in cells] + [_fmt(mean)])
  return _markdown(["experiment"] + datasets + ["mean"], body)


def paper_table(datasets: list[str], experiments: list[str]) -> str | None:
  """The seed paper's own numbers for the datasets it used; None when none of ours are its.
  Its baselines were not ours: each row says what it was."""
  if not any(d in PAPER_ACCURACY["random"] for d in datasets):
    return None
  body = []
  for e in experiments:
    values = [PAPER_ACCURACY.get(e, {}).get(d) for d in datasets]
    known = [v for v in values if v is not None]
    name = f"{e} ({PAPER_BASELINES[e]})" if e in PAPER_BASELINES else e
    body.append([name] + [f"{v:.3f}" if v is not None else "—" for v in values] +
                [f"{np.mean(known):.3f}" if len(known) == len(values) else "—"])
  return _markdown(["experiment (seed paper)"] + datasets + ["mean"], body)


def size_table(rows, tap: str, experiments: list[str]) -> str:
  """Accuracy at each pretraining-set size, averaged over downstream datasets and seeds."""
  sizes = pretrain_sizes(rows)
  body = [[e] + [_fmt_value(mean_top1(rows, e, tap, size)) for size in sizes] for e in experiments]
  return _markdown(["experiment"] + [f"{s:,} {'image' if s == 1 else 'images'}" for s in sizes], body)


def sensitivity_table(rows, tap: str, experiments: list[str], show_paper: bool) -> str:
  sens = sensitivity(rows, tap)
  header = ["experiment", "sensitivity (ours)"] + (["seed paper"] if show_paper else [])
  body = []
  for e in experiments:
    if e not in sens:
      continue
    row = [e, _fmt(sens[e])]
    if show_paper:
      row.append(f"{PAPER_SENSITIVITY[e]:.3f}" if e in PAPER_SENSITIVITY else "—")
    body.append(row)
  return _markdown(header, body)


def probe_result(rows, experiment: str, size: int | None, dataset: str, tap: str
                 ) -> tuple[float, int] | None:
  """(top-1 mean over seeds, test images over all seeds) of one cell kind; None if not run."""
  mine = [r for r in rows if (r["experiment"], r["pretrain_size"], r["downstream"], r["tap"]) ==
          (experiment, size, dataset, tap)]
  if not mine:
    return None
  return float(np.mean([r["top1"] for r in mine])), int(sum(r["test_images"] for r in mine))


def compared(result: tuple[float, int] | None, baseline: tuple[float, int] | None
             ) -> tuple[float, float, float | None] | None:
  """(top-1, its SE, the difference from the baseline in SEs of the difference, or None)."""
  if result is None:
    return None
  top1, n = result
  z = None if baseline is None else stats.difference_in_se(top1, baseline[0], n, baseline[1])
  return top1, stats.binomial_se(top1, n), z


def probe_rows(rows, experiments: list[str]) -> list[tuple[str, int | None]]:
  """(experiment, pretraining images) of every cell kind: random init first, sizes ascending."""
  kinds = sorted({(r["experiment"], r["pretrain_size"]) for r in rows},
                 key=lambda k: (k[0] != RANDOM_INIT, experiments.index(k[0])
                                if k[0] in experiments else len(experiments), k[1] or 0))
  return kinds


def _images(count: int) -> str:
  return f"{count:,} pretraining {'image' if count == 1 else 'images'}"


def _fmt_compared(value) -> str:
  if value is None:
    return "—"
  top1, se, z = value
  mark = stats.MARK if z is not None and abs(z) > stats.MARK_SE else ""
  return f"{top1:.3f} ± {se:.3f}{mark}"


def probe_table(rows, dataset: str, experiments: list[str], order=TAP_ORDER) -> str:
  """Top-1 ± SE per tap (or freeze layer, with order=FREEZE_ORDER) on one dataset for every
  cell kind, marked where it differs from random init by more than stats.MARK_SE standard
  errors of the difference."""
  taps = taps_of(rows, dataset, order)
  body = []
  for experiment, size in probe_rows(rows, experiments):
    cells = []
    for tap in taps:
      baseline = None if experiment == RANDOM_INIT else probe_result(rows, RANDOM_INIT, None,
                                                                       dataset, tap)
      cells.append(_fmt_compared(compared(probe_result(rows, experiment, size, dataset, tap),
                                          baseline)))
    body.append([experiment, "—" if size is None else f"{size:,}"] + cells)
  header = taps if order is TAP_ORDER else [freeze_label(t) for t in taps]
  return _markdown(["experiment", "pretraining images"] + header, body)


def label_fractions(rows) -> list[float]:
  """The fractions of the rows, ascending, 1.0 standing for every label (fraction None)."""
  return sorted({1.0 if r.get("label_fraction") is None else r["label_fraction"] for r in rows})


def at_fraction(rows, fraction: float) -> list[dict[str, Any]]:
  """The rows probed with `fraction` of the labels (1.0: every label)."""
  return [r for r in rows if (r.get("label_fraction") or 1.0) == fraction]


def fraction_table(rows, dataset: str, tap: str, experiments: list[str]) -> str:
  """Top-1 ± SE at `tap` per label fraction on one dataset, every cell kind a row, marked
  where it differs from random init at the same fraction by more than stats.MARK_SE SEs."""
  fractions = label_fractions(rows)
  body = []
  for experiment, size in probe_rows(rows, experiments):
    cells = []
    for fraction in fractions:
      here = at_fraction(rows, fraction)
      baseline = None if experiment == RANDOM_INIT else probe_result(here, RANDOM_INIT, None,
                                                                       dataset, tap)
      cells.append(_fmt_compared(compared(probe_result(here, experiment, size, dataset, tap),
                                          baseline)))
    body.append([experiment, "—" if size is None else f"{size:,}"] + cells)
  header = [f"{fraction:g} of the labels" for fraction in fractions]
  return _markdown(["experiment", "pretraining images"] + header, body)


def fraction_figure(rows, dataset: str, tap: str, experiments: list[str]):
  """Top-1 ± SE at `tap` against the label fraction (log scale) on one dataset, a line per
  cell kind, random init dashed."""
  import matplotlib.pyplot as plt
  fractions = label_fractions(rows)
  fig, ax = plt.subplots(figsize=(6, 4))
  for experiment, size in probe_rows(rows, experiments):
    values = [compared(probe_result(at_fraction(rows, f), experiment, size, dataset, tap), None)
              for f in fractions]
    label = experiment if size is None else f"{experiment} ({size:,} images)"
    ax.errorbar(fractions, [v[0] if v else np.nan for v in values],
                [v[1] if v else 0 for v in values], marker="o", capsize=2, label=label,
                linestyle="--" if experiment == RANDOM_INIT else "-",
                color="black" if experiment == RANDOM_INIT else None)
  ax.set_xscale("log")
  ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
  ax.set_xlabel("fraction of the train split's labels")
  ax.set_ylabel(f"linear probe top-1 ({tap}) ± SE")
  ax.set_title(f"Top-1 against the label fraction on {dataset}")
  ax.legend(fontsize=8)
  return fig


def beats_random(rows, experiments: list[str], datasets: list[str]) -> list[str]:
  """One line per cell kind: the (dataset, tap) pairs where it is above or below random init
  by more than stats.MARK_SE standard errors of the difference."""
  lines = []
  for experiment, size in probe_rows(rows, experiments):
    if experiment == RANDOM_INIT:
      continue
    above, below = [], []
    for dataset in datasets:
      for tap in taps_of(rows, dataset, TAP_ORDER + FREEZE_ORDER):
        value = compared(probe_result(rows, experiment, size, dataset, tap),
                         probe_result(rows, RANDOM_INIT, None, dataset, tap))
        if value is None or value[2] is None or abs(value[2]) <= stats.MARK_SE:
          continue
        (above if value[2] > 0 else below).append(f"{dataset.split('/')[-1]} {tap} "
                                                   f"({value[2]:+.1f} SE)")
    where = f"above random init at {', '.join(above)}" if above else "above random init nowhere"
    if below:
      where += f"; below it at {', '.join(below)}"
    lines.append(f"- **{experiment}** ({_images(size)}): {where}.")
  return lines


def _test_images(rows, experiment: str, dataset: str, tap: str) -> int:
  """Test images behind one (experiment, dataset, tap) result of one cell (0 if none)."""
  return next((r["test_images"] for r in rows if (r["experiment"], r["downstream"], r["tap"]) ==
               (experiment, dataset, tap)), 0)


def write_csv(rows, path: str) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in rows:
      writer.writerow({k: ("" if row[k] is None else row[k]) for k in CSV_FIELDS})


def write_figures(rows, tap: str, experiments: list[str], datasets: list[str],
                  outdir: str) -> list[str]:
  """PNG figures: accuracy per dataset, mean accuracy, sensitivity, size curve, layer curve."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  paths = []

  def save(fig, name):
    path = os.path.join(outdir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    paths.append(path)

  means = accuracy_means(rows, tap)
  present = [e for e in experiments if e in means]
  width = 0.8 / max(len(present), 1)
  fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(datasets) + 3), 4))
  for i, e in enumerate(present):
    stats_ = [means[e].get(d, (np.nan, 0.0, 1)) for d in datasets]
    tests = [_test_images(rows, e, d, tap) for d in datasets]
    # Error bars: the binomial SE over one test set (the mean over sizes counted as one
    # measurement), or the std over seeds where that is larger.
    errors = [max(stats.binomial_se(m, n) if n else 0.0, sd) for (m, sd, _), n in zip(stats_, tests)]
    ax.bar(np.arange(len(datasets)) + i * width, [m for m, _, _ in stats_], width, yerr=errors,
           capsize=2, label=e)
  ax.set_xticks(np.arange(len(datasets)) + width * (len(present) - 1) / 2, datasets)
  values = [means[e][d][0] for e in present for d in datasets if d in means[e]]
  ax.set_ylim(min(values) - 0.03, max(values) + 0.02)  # differences of a point must show
  ax.set_ylabel(f"linear probe top-1 ({tap}) ± SE")
  ax.set_title("Accuracy per downstream dataset (mean over pretraining sizes)")
  ax.legend(fontsize=8, ncol=1, loc="center left", bbox_to_anchor=(1.0, 0.5))
  save(fig, "accuracy_per_dataset.png")

  fig, ax = plt.subplots(figsize=(6, 4))
  mean_acc = [np.mean([means[e][d][0] for d in means[e]]) for e in present]
  ax.bar(present, mean_acc, color="tab:blue")
  ax.set_ylim(min(mean_acc) - 0.05, max(mean_acc) + 0.02)
  ax.set_ylabel(f"mean top-1 over datasets ({tap})")
  ax.set_title("Mean accuracy")
  ax.tick_params(axis="x", rotation=30)
  save(fig, "mean_accuracy.png")

  sens = sensitivity(rows, tap)
  sens_experiments = [e for e in experiments if e in sens]
  if sens_experiments:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(sens_experiments, [sens[e][0] for e in sens_experiments],
           yerr=[sens[e][1] for e in sens_experiments], color="tab:orange", capsize=4)
    ax.set_ylabel("std of accuracy across pretraining sizes")
    ax.set_title("Sensitivity to pretraining-set size")
    ax.tick_params(axis="x", rotation=30)
    save(fig, "sensitivity.png")

  sizes = pretrain_sizes(rows)
  if len(sizes) > 1:
    fig, ax = plt.subplots(figsize=(6, 4))
    for e in present:
      ax.plot(sizes, [mean_top1(rows, e, tap, size) for size in sizes], marker="o", label=e,
              linestyle="--" if e == "random" else "-")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("pretraining images")
    ax.set_ylabel(f"mean top-1 over datasets ({tap})")
    ax.set_title("Accuracy against pretraining-set size")
    ax.legend(fontsize=8, ncol=2)
    save(fig, "accuracy_vs_size.png")

  for dataset in datasets:
    name = dataset.replace("/", "_")
    for order, title, file in ((TAP_ORDER, "Linear probe per layer", f"probe_layers_{name}.png"),
                               (FREEZE_ORDER, "Fine-tuned above a frozen layer",
                                f"finetune_layers_{name}.png")):
      fig = layer_figure(rows, dataset, taps_of(rows, dataset, order),
                         [e for e in present if e != RANDOM_INIT], experiments,
                         f"{title} on {dataset}")
      if fig is not None:
        save(fig, file)
  return paths


def layer_figure(rows, dataset: str, taps: list[str], pretrained: list[str],
                 experiments: list[str], title: str):
  """One panel per experiment: top-1 ± SE against the tap (or freeze layer) for each of its
  pretraining sizes, random init dashed; None when there is no curve to draw."""
  import matplotlib.pyplot as plt
  if len(taps) < 2 or not pretrained:
    return None
  columns = min(3, len(pretrained))
  panel_rows = -(-len(pretrained) // columns)
  fig, axes = plt.subplots(panel_rows, columns, figsize=(max(3.6 * columns, 5.0), 2.8 * panel_rows),
                           sharex=True, sharey=True, squeeze=False)

  def curve(ax, experiment, size, **style):
    values = [compared(probe_result(rows, experiment, size, dataset, t), None) for t in taps]
    ax.errorbar(np.arange(len(taps)), [v[0] if v else np.nan for v in values],
                [v[1] if v else 0 for v in values], marker="o", markersize=3, capsize=2, **style)
  for ax, experiment in zip(axes.ravel(), pretrained):
    curve(ax, RANDOM_INIT, None, color="black", linestyle="--", label="random init")
    sizes = sorted({size for e, size in probe_rows(rows, experiments) if e == experiment})
    for size in sizes:
      curve(ax, experiment, size, linestyle=":" if size == 1 else "-",
            label=f"{size:,} {'image' if size == 1 else 'images'}")
    ax.set_title(experiment, fontsize=9)
    ax.legend(fontsize=7)
  for ax in axes.ravel()[len(pretrained):]:
    ax.axis("off")
  labels = [t if t.startswith("conv") else f"≤conv{t[6:]}" if t != "freeze0" else "none"
            for t in taps]
  for ax in axes[-1]:
    ax.set_xticks(np.arange(len(taps)), labels, fontsize=8)
  for ax in axes[:, 0]:
    ax.set_ylabel("top-1 ± SE", fontsize=8)
  fig.suptitle(title, fontsize=10)
  return fig


def write_report(study, workdir: str, cells_and_results) -> str:
  """results.csv, study.md (tables) and figures/*.png in the workdir; returns the Markdown."""
  rows, missing = [], []
  for cell, results in cells_and_results:
    if results is None:
      missing.append(cell.name)
    else:
      rows += rows_from_results(cell, results)
  os.makedirs(workdir, exist_ok=True)
  write_csv(rows, os.path.join(workdir, "results.csv"))
  if not rows:
    raise ValueError(f"no finished cells in {workdir}; run the study first.")
  every_row, rows = rows, at_fraction(rows, 1.0)  # the tables below: every label
  experiments = _ordered({r["experiment"] for r in rows}, study.experiments)
  tap = main_tap(rows)
  datasets = _ordered((r["downstream"] for r in rows), study.downstream)
  sizes = ", ".join("whole set" if size == 0 else str(size) for size in study.subset_sizes)
  sections = [f"# Study `{study.variant}`",
              f"Linear probes of frozen backbones on {', '.join(datasets)}; pretraining sizes "
              f"({sizes}) and seeds {tuple(study.seeds)}. Each result is top-1 ± its binomial "
              f"standard error over the test images; {stats.MARK} marks a difference from random "
              f"init (the same data, probe and seeds) of more than {stats.MARK_SE:g} standard "
              f"errors of the difference."]
  for dataset in datasets:
    n = _test_images(rows, RANDOM_INIT, dataset, tap) or _test_images(rows, experiments[0],
                                                                       dataset, tap)
    sections += [f"## Probes per layer on {dataset} ({n:,} test images per seed)",
                 probe_table(rows, dataset, experiments)]
  for dataset in datasets:
    if taps_of(rows, dataset, FREEZE_ORDER):
      sections += [f"## Fine-tuned above a frozen layer on {dataset} (conv1..conv<L> frozen "
                   f"with BN in inference mode; the layers above and a new linear classifier "
                   f"trained; random init frozen the same way)",
                   probe_table(rows, dataset, experiments, FREEZE_ORDER)]
  if RANDOM_INIT in experiments:
    sections += ["## Where pretraining beats random init (beyond "
                 f"{stats.MARK_SE:g} SE of the difference)",
                 "\n".join(beats_random(rows, experiments, datasets))]
  sections += [f"## Accuracy at {tap} per downstream dataset (the seed paper's Figure 5: mean "
               f"over pretraining sizes and seeds, ± std over seeds when several)",
               accuracy_table(rows, tap, experiments, datasets)]
  if any(r["tap"] == SEED_PROTOCOL for r in rows):
    sections += ["## The seed's own protocol, fine-tuned above conv3 (its Figure 5 compares with "
                 "this table, not with the probes)",
                 accuracy_table(rows, SEED_PROTOCOL, experiments, datasets)]
  paper = paper_table(datasets, experiments) if study.show_paper else None
  if paper:
    sections += ["The seed paper's published numbers (Macar & Liu; theirs, not ours):", paper]
  sections += [f"## Accuracy at {tap} per pretraining-set size (mean over downstream datasets)",
               size_table(rows, tap, experiments),
               f"## Sensitivity to pretraining-set size at {tap} (std across sizes, mean over "
               f"datasets)",
               sensitivity_table(rows, tap, experiments, study.show_paper)]
  fractions = label_fractions(every_row)
  if len(fractions) > 1:
    for dataset in datasets:
      sections += [f"## Probes at {tap} with a share of the labels on {dataset} (class-balanced, "
                   f"seeded; {stats.MARK} against random init at the same share)",
                   fraction_table(every_row, dataset, tap, experiments)]
  if missing:
    sections += [f"Not finished yet ({len(missing)} cells): {', '.join(missing)}."]
  os.makedirs(os.path.join(workdir, "figures"), exist_ok=True)
  figures = write_figures(rows, tap, experiments, datasets, os.path.join(workdir, "figures"))
  if len(fractions) > 1:
    import matplotlib.pyplot as plt
    for dataset in datasets:
      path = os.path.join(workdir, "figures", f"label_fraction_{dataset.replace('/', '_')}.png")
      fig = fraction_figure(every_row, dataset, tap, experiments)
      fig.tight_layout()
      fig.savefig(path, dpi=100)
      plt.close(fig)
      figures.append(path)
  sections += ["Figures: " + ", ".join(os.path.relpath(p, workdir) for p in figures)]
  markdown = "\n\n".join(sections) + "\n"
  with open(os.path.join(workdir, "study.md"), "w") as f:
    f.write(markdown)
  log.info(markdown)
  log.info(f"[study] wrote {os.path.join(workdir, 'study.md')}, results.csv and "
           f"{len(figures)} figures")
  return markdown
