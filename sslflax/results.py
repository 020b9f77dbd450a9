"""Where a run writes its results: one file per evaluation protocol, so the linear probes and
each fine-tune of one checkpoint sit side by side in its workdir."""

from __future__ import annotations

# The untrained baseline: its experiment and task name, and its results row beside every run.
RANDOM_INIT = "random"


def results_file(linear_eval) -> str:
  """results.json for the linear probes; results-finetune-freeze<L>.json for a fine-tune
  above conv<L>."""
  if linear_eval.mode == "probe":
    return "results.json"
  return f"results-finetune-freeze{linear_eval.freeze_layer}.json"
