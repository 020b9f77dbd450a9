"""Where a run writes its results: one file per evaluation protocol, so the linear probes and
each fine-tune of one checkpoint sit side by side in its workdir."""

from __future__ import annotations

# The untrained baseline: its experiment and task name, and its results row beside every run.
RANDOM_INIT = "random"


def results_file(linear_eval) -> str:
  """results.json for the linear probes; results-finetune-freeze<L>.json for a fine-tune
  above conv<L>; either with -labels<fraction> before .json when it trained on a share of
  the labels (linear_eval.label_fraction below 1)."""
  name = "results" if linear_eval.mode == "probe" else (
      f"results-finetune-freeze{linear_eval.freeze_layer}")
  fraction = linear_eval.label_fraction
  return f"{name}-labels{fraction:g}.json" if fraction not in (None, 1.0) else f"{name}.json"
