#!/bin/bash
# Data parallel on one machine: the same global step of `rlaif train` (SmolLM2-135M shape, full fine-tuning, bf16
# training matmuls where the CPU has them, a rule grader as the reward so the judge costs nothing) run by 1 rank with
# 2 threads and by 2 ranks with 1 thread each (scripts/torchrun), the ranks' gradients summed while backward runs
# (ddp_bucket_cap_mb = 25) and after it (0). Prints a fixed table: the mean over the steps after the first (warm-up)
# of the step, its generation and update, the time the update waited for the gradient sums after backward, all time
# in collectives, the ratio of throughputs and each rank's peak RSS; then the share of the gradient sums that backward
# hid, and the peak RSS with ZeRO stage 1 (zero_stage = 1) against plain data parallel.
#   bash bench/dist_bench.sh [BUILD_DIR] [STEPS (default 4)] [COMPLETIONS per step (default 32)]
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
steps=${2:-4}
completions=${3:-32}
here=$(cd "$(dirname "$0")/.." && pwd)
model=${RLAIF_BENCH_MODEL:-/tmp/rlaif-bench-smollm2-135m}
[ -f "$model/model.safetensors" ] || "$build/rlaif" init-model --arch llama --size smollm2-135m --seed 1 --out "$model" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 0 199); do echo "{\"prompt\": \"Write a short note about topic number $i.\"}"; done > "$work/prompts.jsonl"
config() {  # output dir, per-rank batch, threads, bucket MiB
  cat <<TOML
[model]
path = "$model"
[data]
prompts = "$work/prompts.jsonl"
[train]
output_dir = "$work/$1"
max_steps = $steps
per_device_train_batch_size = $2
gradient_accumulation_steps = 1
num_generations = 4
max_completion_length = 64
learning_rate = 1e-5
num_threads = $3
save_steps = 0
ddp_bucket_cap_mb = $4
zero_stage = ${5:-0}
[judge]
backend = "none"
[[graders]]
type = "regex"
value = "e"
TOML
}
config one "$completions" 2 25 > "$work/one.toml"
config two $((completions / 2)) 1 25 > "$work/two.toml"
config after $((completions / 2)) 1 0 > "$work/after.toml"
config zero $((completions / 2)) 1 25 1 > "$work/zero.toml"
# Each process's peak RSS (KiB) into $work/RUN.rss.RANK (GNU time, Debian's `time` package).
rss() { /usr/bin/time -f %M -o "$work/$1.rss.${RANK:-0}" "${@:2}"; }
export -f rss
export work
bash -c 'rss one "$@"' _ "$build/rlaif" train --quiet --config "$work/one.toml"
for run in two after zero; do
  "$here/scripts/torchrun" --no_python --nproc_per_node 2 --master_port $((20000 + RANDOM % 20000)) \
    bash -c 'rss '$run' "$@"' _ "$build/rlaif" train --quiet --config "$work/$run.toml" 2>/dev/null
done
cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
/usr/bin/python3 - "$work" "$cpu" "$completions" <<'PY'
import json, sys
work, cpu, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def mean(run, key):
    rows = [json.loads(l) for l in open(f"{work}/{run}/metrics.jsonl")][1:]
    return sum(r.get(key, 0.0) for r in rows) / len(rows)
print(f"CPU: {cpu}; {n} completions of <= 64 tokens per step, full fine-tuning")
import glob
def rss(run):
    return max(int(open(f).read().split()[-1]) for f in glob.glob(f"{work}/{run}.rss.*")) / 1024
print("| run | step (s) | generate (s) | update (s) | gradient sums after backward (s) | all collectives (s) | "
      "throughput vs 1 rank | peak RSS per rank (MiB) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
base = mean("one", "timing/step")
for run, name in (("one", "1 rank x 2 threads"), ("two", "2 ranks x 1 thread, sums during backward"),
                  ("after", "2 ranks x 1 thread, sums after backward"), ("zero", "2 ranks x 1 thread, ZeRO-1")):
    step = mean(run, "timing/step")
    print(f"| {name} | {step:.2f} | {mean(run, 'timing/generate'):.2f} | {mean(run, 'timing/train'):.2f} | "
          f"{mean(run, 'dist/grad_sync'):.2f} | {mean(run, 'dist/wait'):.2f} | {base / step:.2f}x | {rss(run):.0f} |")
after = mean("after", "dist/grad_sync")
print(f"gradient sums hidden behind backward: {100 * (1 - mean('two', 'dist/grad_sync') / after):.0f}%"
      if after > 0 else "no gradient sums measured")
PY
