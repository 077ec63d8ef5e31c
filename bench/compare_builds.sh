#!/usr/bin/env bash
# Two builds side by side (e.g. the commit before a change and after it), alternating, one process per run:
# batched decode (bf16 packed; batch 1 and 32 sequences) and the bf16 GRPO update of a SmolLM2-135M-shaped model.
# The machine is shared and noisy: compare ratios within a pair, not absolute figures across runs.
#   bash bench/compare_builds.sh OLD_BUILD_DIR NEW_BUILD_DIR [PAIRS]
set -euo pipefail
old=$1 new=$2 pairs=${3:-2}
model=${RLAIF_BENCH_MODEL:-/tmp/rlaif-bench-smollm2-135m}
[ -f "$model/model.safetensors" ] || "$new/rlaif" init-model --arch llama --size smollm2-135m --seed 1 --out "$model" >/dev/null
for pair in $(seq "$pairs"); do
  for dir in "$old" "$new"; do
    echo "== $dir (pair $pair): bench_generate --dtypes bfloat16 --batches 1,32 --new-tokens 64"
    "$dir/bench/bench_generate" --dtypes bfloat16 --batches 1,32 --new-tokens 64 | grep -E "^\| (compute path|bf16)"
    echo "== $dir (pair $pair): bench_train --bf16 --prompts 2 --steps 2"
    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=18446744073709551615 MALLOC_TOP_PAD_=67108864 \
      "$dir/bench/bench_train" --model "$model" --bf16 --prompts 2 --steps 2 | grep -E "^\| rlaif"
  done
done
