"""Standard errors and the comparison with random init, against hand-computed values."""

import math

import pytest

from sslflax.evaluate import stats


def test_binomial_se_and_difference_in_se():
  assert stats.binomial_se(0.8, 5000) == pytest.approx(math.sqrt(0.8 * 0.2 / 5000))
  assert stats.binomial_se(1.0, 10) == 0.0
  z = stats.difference_in_se(0.83, 0.80, 5000)
  assert z == pytest.approx(0.03 / math.hypot(math.sqrt(.83 * .17 / 5000), math.sqrt(.8 * .2 / 5000)))
  assert stats.difference_in_se(1.0, 1.0, 10) == 0.0
  assert stats.difference_in_se(1.0, 0.0, 10) == math.inf  # both exact, yet different
  with pytest.raises(ValueError, match="needs test images"):
    stats.binomial_se(0.5, 0)


def test_comparison_rows_and_console_table_mark_beyond_two_se():
  rows = stats.comparison({"conv1": 0.81, "conv3": 0.83}, {"conv1": 0.80, "conv3": 0.80}, 5000)
  assert not rows["conv1"]["marked"] and rows["conv3"]["marked"]
  assert rows["conv3"]["difference"] == pytest.approx(0.03)
  table = stats.format_comparison("rotation", "fashion", "test", 5000, rows).splitlines()
  assert "5000 images" in table[0] and "random init" in table[1]
  assert table[2].startswith("conv1") and not table[2].endswith("*")
  assert table[3].startswith("conv3") and table[3].endswith("(+3.9 SE) *")
  alone = stats.format_comparison("random", "fashion", "test", 5000,
                                  stats.comparison({"conv1": 0.8}, None, 5000)).splitlines()
  assert "random init" not in alone[1] and alone[2].split() == ["conv1", "0.8000", "±", "0.0057"]


def test_summarize_runs_tabulates_differences_from_random(tmp_path):
  """tools/summarize_runs.py (the README's defaults table) reads results.json comparisons."""
  import importlib.util
  import json
  import pathlib
  path = pathlib.Path(__file__).resolve().parents[1] / "tools" / "summarize_runs.py"
  spec = importlib.util.spec_from_file_location("summarize_runs", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  runs = {"random": (stats.comparison({"conv1": 0.80}, None, 5000), 30.0),
          "rotation": (stats.comparison({"conv1": 0.83}, {"conv1": 0.80}, 5000), 300.0)}
  for name, (rows, seconds) in runs.items():
    (tmp_path / name).mkdir()
    (tmp_path / name / "results.json").write_text(json.dumps(
        {"experiment": name, "wall_time_s": seconds, "comparison": {"fashion": rows}}))
  lines = module.table([tmp_path / "random", tmp_path / "rotation"], None).splitlines()
  assert lines[0] == "| run | minutes | conv1 |"
  assert lines[2] == "| random init (top-1) | 0.5 | 0.800 |"
  assert lines[3] == "| rotation | 5.0 | +3.0 (+3.9)* |"
  assert len(lines) == 4  # random init has no comparison row of its own
