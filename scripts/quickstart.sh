#!/usr/bin/env bash
# The main job, for now: make a small model (no download), sample completions for a file of prompts, then run a
# short RL loop (GRPO) whose reward is a rule grader — the whole train loop on CPU in under a minute. The full
# offline RLAIF quickstart with a trained judge model replaces this (issue #6).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN="${RUN_DIR:-runs/quickstart}"
mkdir -p "$RUN"
BIN=build/rlaif
[ -f "$RUN/model/config.json" ] || $BIN init-model --arch llama --size small --seed 0 --out "$RUN/model"
cat > "$RUN/prompts.jsonl" <<'JSONL'
{"prompt": "Write a one-sentence review of a coffee grinder."}
{"prompt": "Explain in one line why the sky is blue."}
{"messages": [{"role": "system", "content": "You are concise."}, {"role": "user", "content": "Name three colours."}]}
{"prompt": "List two uses of a paperclip:"}
JSONL
$BIN generate --model "$RUN/model" --prompts "$RUN/prompts.jsonl" --out "$RUN/completions.jsonl" \
  --num-generations 4 --temperature 0.9 --top-p 0.95 --max-new-tokens 64 --seed 1
echo "quickstart: completions in $RUN/completions.jsonl (the model is random: the text is noise until it is trained)"

# A short GRPO run. The reward is a rule grader (does the completion contain the letter "e"?), so the loop needs no
# judge server; point [judge] at any OpenAI-compatible URL (docs/config.md) for LLM-judged rewards.
cat > "$RUN/run.toml" <<TOML
[model]
path = "$RUN/model"
[data]
prompts = "$RUN/prompts.jsonl"
[train]
output_dir = "$RUN/grpo"
max_steps = 40
num_generations = 8
per_device_train_batch_size = 16
gradient_accumulation_steps = 2
max_completion_length = 24
learning_rate = 1e-3
beta = 0.04
save_steps = 20
[judge]
backend = "none"
[[graders]]
name = "has_e"
type = "contains"
value = "e"
TOML
rm -rf "$RUN/grpo"
$BIN train --config "$RUN/run.toml"
python3 - "$RUN/grpo/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"reward"' in l]
first = sum(r["reward"] for r in rows[:10]) / 10
last = sum(r["reward"] for r in rows[-10:]) / 10
print(f"quickstart: GRPO mean reward {first:.3f} (steps 1-10) -> {last:.3f} (steps {len(rows) - 9}-{len(rows)}); "
      f"metrics in {sys.argv[1]}, model in {sys.argv[1].rsplit('/', 1)[0]}/final")
PY
