#!/usr/bin/env bash
# The tools quickstart: a multi-turn RLAIF run, offline, on CPU, where the policy must call a tool to succeed. The task
# (scripts/lookup_task.py): "What is the code of <item>?", each item's code a random number in a table only the
# `lookup` tool can read. A small policy (SFT from scratch) calls the tool, often for the wrong item, then answers with
# the code it got back. GRPO on episodes ([env] type = "tools") with a command judge that reads each trajectory
# (did the policy look up the item asked about, and answer with the code the tool returned?) teaches it to look up the
# right item; the ground truth (the true code, from the table the judge never sees) rises.
#
# Knobs (environment): RUN_DIR (default runs/quickstart_tools), POLICY_SFT_STEPS, RL_STEPS.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${QUICKSTART_SKIP_SETUP:-}" ] || bash scripts/setup.sh
RUN="${RUN_DIR:-runs/quickstart_tools}"
POLICY_SFT_STEPS="${POLICY_SFT_STEPS:-300}"
RL_STEPS="${RL_STEPS:-50}"
BIN="${RLAIF_BIN:-build/rlaif}"
PY=/usr/bin/python3
TASK="$PWD/scripts/lookup_task.py"
mkdir -p "$RUN"
start=$(date +%s)
stage() { echo; echo "== tools quickstart [$(( $(date +%s) - start ))s] $*"; }

stage "1/4 task data and tokenizer"
[ -f "$RUN/task/prompts.jsonl" ] || { mkdir -p "$RUN/task" && $PY "$TASK" make --out "$RUN/task" --seed 0; }
[ -f "$RUN/tokenizer/tokenizer.json" ] ||
  $BIN train-tokenizer --corpus "$RUN/task/policy_sft.jsonl" --vocab-size 384 --out "$RUN/tokenizer"

stage "2/4 policy (rlaif sft from scratch): calls the tool, for the item asked about only about half of the time"
if [ ! -f "$RUN/policy/final/config.json" ]; then
  rm -rf "$RUN/policy"
  $BIN init-model --arch llama --size hidden=128,layers=2,heads=4,kv_heads=2 --seed 1 --tokenizer "$RUN/tokenizer" \
    --out "$RUN/policy/init"
  cat > "$RUN/policy/sft.toml" <<TOML
[model]
path = "$RUN/policy/init"
[data]
prompts = "$RUN/task/policy_sft.jsonl"
[train]
output_dir = "$RUN/policy"
max_steps = $POLICY_SFT_STEPS
per_device_train_batch_size = 32
learning_rate = 3e-3
warmup_ratio = 0.05
lr_scheduler_type = "cosine"
save_steps = 0
logging_steps = 50
TOML
  $BIN sft --config "$RUN/policy/sft.toml"
fi

stage "3/4 GRPO on episodes: the policy calls the lookup tool, a command judge grades each trajectory"
cat > "$RUN/run.toml" <<TOML
[model]
path = "$RUN/policy/final"
[data]
prompts = "$RUN/task/prompts.jsonl"
eval_prompts = "$RUN/task/eval_prompts.jsonl"
[train]
output_dir = "$RUN/grpo"
max_steps = $RL_STEPS
num_generations = 8
per_device_train_batch_size = 64
max_completion_length = 96
temperature = 1.0
learning_rate = 1e-3
lr_scheduler_type = "constant"
beta = 0.04
save_steps = 0
logging_steps = 1
eval_steps = 10
eval_samples = 64
integrity_verifier = "ground_truth"
[env]
type = "tools"
tool_format = "hermes"
max_turns = 3
max_turn_tokens = 40
max_episode_tokens = 96
[[env.tools]]
name = "lookup"
description = "Returns the code of the item named key."
command = ["$PY", "$TASK", "tool", "--table", "$RUN/task/table.json"]
timeout_s = 10
[env.tools.parameters]
type = "object"
required = ["key"]
[env.tools.parameters.properties.key]
type = "string"
[judge]
backend = "command"
command = ["$PY", "$TASK", "judge"]
[[graders]]
name = "ground_truth"
type = "contains"
value = "{reference}"
weight = 0
TOML
rm -rf "$RUN/grpo"
$BIN train --config "$RUN/run.toml"

stage "4/4 report"
$BIN report "$RUN/grpo"
$PY - "$RUN/grpo/metrics.jsonl" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ev = [r for r in rows if "eval/reward" in r]
first, last = ev[0], ev[-1]
gt = "eval/rewards/ground_truth/mean"
n = sum(json.loads(l)["step"] == first["step"] for l in open(sys.argv[1].replace("metrics", "eval_samples")))
print(f"\ntools quickstart: on {n} held-out questions, ground-truth success {first[gt]:.0%} -> {last[gt]:.0%}, judge "
      f"reward {first['eval/reward']:.3f} -> {last['eval/reward']:.3f} (step {first['step']} -> {last['step']}); "
      f"{sys.argv[2]} s in all")
PY
echo "tools quickstart: report in $RUN/grpo/report.html; metrics in $RUN/grpo/metrics.jsonl"
