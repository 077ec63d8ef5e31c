#!/bin/bash
# One GRPO update, side by side: rlaif (fp32 and bf16, full and LoRA r=16) and the eager PyTorch baseline
# (bench/train_step_ref.py, fp32 as the target defines it, and with bf16 autocast too), each configuration in its own
# process so peak RSS is its own. The baseline gets the same allocator settings rlaif uses (keep_freed_memory), so it
# too stops paying for fresh zeroed pages every micro-batch, and OpenMP's default wait policy, as rlaif now runs with
# the OpenMP OpenBLAS (measured: its LoRA bf16 step 31.4 s under OMP_WAIT_POLICY=PASSIVE, 25.6 s without). Prints a
# fixed table.
#   bash bench/train_bench.sh [BUILD_DIR] [extra args for both, e.g. --steps 2: best of 2 steps after a warm-up]
set -euo pipefail
build=${1:-build}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
model=${RLAIF_BENCH_MODEL:-/tmp/rlaif-bench-smollm2-135m}
[ -f "$model/model.safetensors" ] || "$build/rlaif" init-model --arch llama --size smollm2-135m --seed 1 --out "$model" >/dev/null
echo "| configuration | step time | tokens/s | peak RSS | achieved | of peak | matmul peaks (GFLOP/s, this run) |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for lora in "" "--lora 16"; do
  for bf16 in "" "--bf16"; do
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=18446744073709551615 MALLOC_TOP_PAD_=67108864 \
      /usr/bin/python3 "$here/train_step_ref.py" "$model" $lora $bf16 "$@"
  done
  "$build/bench/bench_train" --model "$model" $lora "$@"
  "$build/bench/bench_train" --model "$model" $lora --bf16 "$@"
done
