#!/usr/bin/env bash
# The main job, for now: make a small model (no download), then sample completions for a file of prompts.
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
