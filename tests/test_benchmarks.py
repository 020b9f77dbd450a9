"""The speed benchmarks of issue 29 run, and what they report is computed correctly: the
profile attributes op time to layers and finds the weight gradients, and the rewritten
convolutions the layer benchmark compares give XLA's gradients."""

import re
import subprocess
import sys

import pytest

from tests.helpers import ROOT


def run_benchmark(*args: str) -> str:
  result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  return result.stdout


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_step_profile_finds_every_layers_forward_pass_and_the_weight_gradients():
  out = run_benchmark("benchmarks/profile_step.py", "--size", "32", "--batch", "4",
                      "--steps", "1", "--top", "100")
  for layer in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6"):
    assert re.search(rf"%\s+{layer}\s+forward", out), (layer, out)
  assert "conv weight gradient" in out, out
  total = float(re.search(r"([\d.]+) ms of op time per step", out).group(1))
  shares = [float(s) for s in re.findall(r"ms\s+([\d.]+)%", out.split("by layer")[1])]
  assert total > 0 and abs(sum(shares) - 100) < 1.0, (total, sum(shares))


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_rewritten_convolutions_give_xlas_gradients():
  out = run_benchmark("benchmarks/bench_conv_grad.py", "--size", "32", "--batch", "4",
                      "--repeats", "1")
  diffs = [float(d) for d in re.findall(r"^conv\d.*\s(\S+)$", out, re.MULTILINE)]
  assert len(diffs) == 5, out
  assert max(diffs) < 1e-4, out


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_side_by_side_benchmark_times_rotation_and_simclr_steps():
  """bench_vs_torch.py runs both tasks (SimCLR also on ready views), with or without torch."""
  out = run_benchmark("benchmarks/bench_vs_torch.py", "--tasks", "rotation,simclr",
                      "--sizes", "32", "--batches", "4", "--rounds", "1", "--steps", "1")
  rates = dict(re.findall(r"(\w+) 32 px batch 4 round 1: sslflax\s+([\d.]+) img/s", out))
  assert set(rates) == {"rotation", "simclr"} and min(map(float, rates.values())) > 0, out
  assert re.search(r"simclr .* sslflax ready views\s+[\d.]+ img/s", out), out
  assert ("ratio" in out) == ("torch is not installed" not in out), out
