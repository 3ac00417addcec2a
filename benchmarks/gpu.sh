#!/usr/bin/env bash
# The GPU benchmark in one script: under 5 minutes on one GPU, after `make install`, nothing downloaded.
#
#   benchmarks/gpu.sh [OUT.json]          (default: gpu_benchmark.json in the working directory)
#
# Writes one JSON document with
#   throughput  ResNet-56 paper-recipe training (CIFAR-10, batch 64) images/s: the original code's loop (`reference`)
#               and this project's paths (eager_fp32, default, channels_last where not the default, bf16, compile),
#               each as a ratio to the reference loop and to eager fp32 (benchmarks/throughput.py)
#   epoch_s     the time of one 50,000-image CIFAR-10 training epoch on each path (50,000 / images/s)
#   pruned      each pruned model's measured speedup beside its FLOPs and params ratios (benchmarks/pruned_speed.py)
#   ddp         with more than one visible GPU: images/s of the default path on 1 process and on N (DDP, global batch
#               64 shared), and the scaling N-process / 1-process
# and the Markdown table of the pruned models beside it (OUT with .md). Environment: PY (the interpreter; default
# .venv/bin/python), RETHINK_CIFAR10_NPZ (default ../shared/data/cifar10/cifar10.npz from the repository root).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-gpu_benchmark.json}")
PY=${PY:-.venv/bin/python}
export RETHINK_CIFAR10_NPZ=${RETHINK_CIFAR10_NPZ:-$(realpath -m ../shared/data/cifar10/cifar10.npz)}
export WANDB_MODE=offline

if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu.sh: error: torch sees no CUDA GPU here ($PY); run it on a GPU machine after 'make install'." >&2
  exit 2
fi
gpus=$("$PY" -c "import torch; print(torch.cuda.device_count())")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

echo "gpu.sh: training paths (ResNet-56) ..." >&2
"$PY" benchmarks/throughput.py --device cuda --steps 150 --warmup 30 --repeats 2 --workers 1 --compile \
  --data-batches 100 --json "$work/throughput.json" >&2

echo "gpu.sh: pruned models ..." >&2
"$PY" benchmarks/pruned_speed.py --device cuda --repeats 3 --json "$work/pruned.json" --markdown "${out%.json}.md" >&2

if [ "$gpus" -gt 1 ]; then
  echo "gpu.sh: DDP scaling, 1 and $gpus processes ..." >&2
  for n in 1 "$gpus"; do
    "$PY" benchmarks/throughput.py --device cuda --devices "$n" --paths default --repeats 1 --steps 150 \
      --warmup 30 --data-batches 1 --json "$work/ddp$n.json" >&2
  done
fi

"$PY" - "$work" "$out" "$gpus" "$start" <<'EOF'
import json, sys, time
from pathlib import Path

work, out, gpus, start = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
throughput = json.loads((work / "throughput.json").read_text())
result = {
    "device_name": throughput["device_name"],
    "gpus": gpus,
    "throughput": throughput,
    "epoch_s": {name: round(50_000 / ips, 1) for name, ips in throughput["images_per_s"].items()},
    "pruned": json.loads((work / "pruned.json").read_text()),
}
if gpus > 1:
    one, many = (json.loads((work / f"ddp{n}.json").read_text())["images_per_s"]["default"] for n in (1, gpus))
    result["ddp"] = {"processes": gpus, "images_per_s_1": one, f"images_per_s_{gpus}": many,
                     "scaling": round(many / one, 3), "global_batch": 64}
result["wall_time_s"] = int(time.time()) - start
out.write_text(json.dumps(result, indent=2) + "\n")
print(f"gpu.sh: wrote {out} in {result['wall_time_s']} s")
EOF
