"""Where the default rotation step's time goes on XLA:CPU, op by op: the step is traced with
`jax.profiler`, each executed XLA op is matched to its source (the HLO metadata's op_name, for
example `.../conv2/conv_general_dilated`), and the time is summed by layer and by kind.

  python benchmarks/profile_step.py                      # 64 px, batch 64 (x 4 rotations)
  python benchmarks/profile_step.py --size 224 --batch 32 --steps 2

Prints the share of each (layer, kind) group of the traced steps' op time; kinds separate a
layer's forward pass from its backward pass (`transpose(jvp(...))` in the op name). The trace
itself stays in --trace_dir for Perfetto or TensorBoard.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import pathlib
import re
import tempfile

from sslflax.hostmem import keep_freed_memory

keep_freed_memory()

import jax

from bench_vs_torch import jax_stepper


INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (.*?) ([\w\-]+)\((.*)$")


def op_sources(hlo_text: str, rows: int) -> dict[str, str]:
  """HLO instruction name -> its metadata op_name. An instruction that calls a computation (a
  fusion, a YNNPACK or oneDNN call) takes the op_name of a convolution or dot inside it, or
  else its own. A convolution whose output does not lead with the batch's `rows` is a weight
  gradient: its op_name gets '/weight_grad' appended."""
  computations: dict[str, list[tuple[str, str, str]]] = {}
  calls: dict[str, str] = {}
  sources: dict[str, str] = {}
  current = None
  for line in hlo_text.splitlines():
    header = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
    if header and " = " not in line:
      current = computations.setdefault(header.group(1), [])
      continue
    match = INSTRUCTION.match(line)
    if not match:
      continue
    name, shape, opcode, rest = match.groups()
    op_name = re.search(r'op_name="([^"]+)"', rest)
    op_name = op_name.group(1) if op_name else ""
    if opcode == "convolution" and op_name and not re.match(rf"\w+\[{rows},", shape):
      op_name += "/weight_grad"
    if current is not None:
      current.append((opcode, op_name, name))
    called = re.search(r"calls=%?([\w.\-]+)", rest)
    if called:
      calls[name] = called.group(1)
    if op_name:
      sources[name] = op_name
  for name, computation in calls.items():
    inner = [op for opcode, op, _ in computations.get(computation, [])
             if opcode in ("convolution", "dot") and op]
    if inner:
      sources[name] = inner[0]
  return sources


def group_of(op_name: str) -> str:
  """(layer, kind) of an op's source: the module path's last named layer, and whether it runs
  in the forward or the backward pass."""
  backward = "transpose(" in op_name
  layers = re.findall(r"(conv\d|bn\d|bn_fc\d|fc\d|head|classifier)", op_name)
  layer = layers[-1] if layers else ("optimizer" if re.search(r"adam|optax|update", op_name)
                                     else "other")
  primitive = op_name.rsplit("/", 1)[-1]
  if primitive == "weight_grad" or "/weight_grad/" in op_name:  # XLA's, or sslflax.models.conv's
    return f"{layer:9} {'backward':8} conv weight gradient"
  return f"{layer:9} {'backward' if backward else 'forward':8} {primitive}"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--size", type=int, default=64)
  parser.add_argument("--batch", type=int, default=64)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--top", type=int, default=30)
  parser.add_argument("--trace_dir", default=None)
  args = parser.parse_args()
  trace_dir = pathlib.Path(args.trace_dir or tempfile.mkdtemp(prefix="sslflax-profile-"))
  steps, compiled_text = jax_stepper(args.size, args.batch, with_hlo=True)
  sources = op_sources(compiled_text, 4 * args.batch)
  with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
    steps(args.steps)
  trace_file = next(trace_dir.rglob("perfetto_trace.json.gz"))
  events = json.loads(gzip.open(trace_file).read())
  events = events["traceEvents"] if isinstance(events, dict) else events
  totals: dict[str, float] = collections.Counter()
  matched = 0
  for event in events:
    name = event.get("name", "")
    if event.get("ph") != "X" or name not in sources:
      continue
    totals[group_of(sources[name])] += event["dur"] / 1000 / args.steps
    matched += 1
  whole = sum(totals.values())
  print(f"{args.size} px, batch {args.batch} (x4 rotations): {matched} op events over "
        f"{args.steps} steps, {whole:.0f} ms of op time per step (trace: {trace_file})")
  for group, ms in sorted(totals.items(), key=lambda kv: -kv[1])[:args.top]:
    print(f"{ms:8.1f} ms {100 * ms / whole:5.1f}%  {group}")
  layers = collections.Counter()
  for group, ms in totals.items():
    layers[" ".join(group.split()[:2])] += ms
  print("by layer and pass:")
  for group, ms in sorted(layers.items(), key=lambda kv: -kv[1]):
    print(f"{ms:8.1f} ms {100 * ms / whole:5.1f}%  {group}")


if __name__ == "__main__":
  main()
