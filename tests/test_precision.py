"""Mixed precision (model.compute_dtype='bfloat16'): bf16 compute, float32 parameters and
BatchNorm statistics, and a loss within round-off of float32's over a few steps."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sslflax.build import build_run
from sslflax.errors import ConfigError
from sslflax.train.loop import init_state, jit_train_step
from sslflax.train.optim import make_optimizer
from tests.helpers import load_config, one_device, photo_crops


def losses_and_state(dtype: str, name: str = "alexnet_bn", steps: int = 4):
  config = load_config("rotation", "smoke", **{"model.compute_dtype": dtype,
                                                "model.name": name, "pretrain.batch_size": 8})
  run = build_run(config)
  tx = make_optimizer(run.optimizer, 10, 10)
  state = init_state(run.task, tx, one_device(), 64, 0)
  step = jit_train_step(run.task, tx, one_device(), None)
  images, labels = jnp.asarray(photo_crops(8, 64, seed=0)), jnp.zeros(8, jnp.int32)
  losses = []
  for _ in range(steps):
    state, metrics = step(state, images, labels)
    losses.append(float(metrics["loss"]))
  return np.array(losses), state, run


def test_bfloat16_computes_in_bf16_keeps_float32_state_and_tracks_float32_losses():
  full, _, _ = losses_and_state("float32")
  mixed, state, run = losses_and_state("bfloat16")
  features, taps = run.backbone.apply({"params": state.params["backbone"],
                                       "batch_stats": state.batch_stats["backbone"]},
                                      jnp.zeros((2, 64, 64, 3), jnp.uint8))
  assert features.dtype == jnp.bfloat16 and taps["conv3"].dtype == jnp.bfloat16
  leaves = jax.tree.leaves(state.params) + jax.tree.leaves(state.batch_stats)
  assert {x.dtype for x in leaves} == {jnp.dtype(jnp.float32)}
  np.testing.assert_allclose(mixed, full, rtol=0.02)  # measured: under 0.5% in 4 steps
  assert not np.array_equal(mixed, full)  # it did compute in bf16


def test_an_unknown_compute_dtype_is_a_one_line_error():
  with pytest.raises(ConfigError, match="model.compute_dtype='float16'"):
    build_run(load_config("rotation", "smoke", **{"model.compute_dtype": "float16"}))


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_device_benchmark_runs():
  import subprocess
  import sys
  from tests.helpers import ROOT
  result = subprocess.run([sys.executable, "benchmarks/bench_device.py", "--size", "32",
                           "--batch", "8", "--steps", "1", "--backbones", "alexnet_bn",
                           "--dtypes", "bfloat16"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "alexnet_bn  bfloat16  32 px batch 8:" in result.stdout and "img/s" in result.stdout
