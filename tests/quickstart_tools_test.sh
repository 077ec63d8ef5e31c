#!/usr/bin/env bash
# The tools quickstart, shortened (a few SFT and RL steps), end to end: every stage must leave its outputs, the
# episodes must hold tool calls and their results, and the judge and the ground truth must be reported.
# Usage: quickstart_tools_test.sh RLAIF_BIN
set -euo pipefail
BIN=$(realpath "$1")
cd "$(dirname "$0")/.."
RUN=$(mktemp -d /tmp/rlaif-quickstart-tools-XXXXXX)
trap 'rm -rf "$RUN"' EXIT
QUICKSTART_SKIP_SETUP=1 RLAIF_BIN="$BIN" RUN_DIR="$RUN" POLICY_SFT_STEPS=60 RL_STEPS=2 \
  bash scripts/quickstart_tools.sh > "$RUN.log" 2>&1 || { tail -40 "$RUN.log"; exit 1; }
fail() { echo "quickstart_tools_test: $*"; tail -40 "$RUN.log"; exit 1; }
for f in task/table.json task/prompts.jsonl task/eval_prompts.jsonl tokenizer/tokenizer.json policy/final/model.safetensors \
         grpo/metrics.jsonl grpo/samples.jsonl grpo/final/model.safetensors grpo/report.html; do
  [ -s "$RUN/$f" ] || fail "missing $f"
done
/usr/bin/python3 - "$RUN" <<'PY' || fail "outputs are not as expected"
import json, sys
run = sys.argv[1]
rows = [json.loads(l) for l in open(f"{run}/grpo/metrics.jsonl")]
steps = [r for r in rows if "reward" in r]
assert [r["step"] for r in steps] == [1, 2], steps
for r in steps:
    assert "rewards/ground_truth/mean" in r and "integrity/verifier_success_rate" in r, r
    assert r["env/turns_mean"] >= 1 and r["env/failures"] == 0, r
    assert r.get("env/tool_calls/ok", 0) > 0, "the SFT policy calls the tool: %s" % r
evals = [r for r in rows if "eval/reward" in r]
assert [r["step"] for r in evals] == [0, 2], evals
assert all("eval/rewards/ground_truth/mean" in r and r["eval/failures"] == 0 for r in evals), evals
held_out = [json.loads(l) for l in open(f"{run}/grpo/eval_samples.jsonl")]
assert len(held_out) == 128 and all("episode" in s and "ground_truth" in s["grades"] for s in held_out)
samples = [json.loads(l) for l in open(f"{run}/grpo/samples.jsonl")]
tool_results = [m for s in samples for m in s["episode"]["messages"] if m["role"] == "tool"]
assert tool_results, "no episode holds a tool result"
table = json.load(open(f"{run}/task/table.json"))
ok = [m for m in tool_results if not m["content"].startswith("error")]
assert ok and all(table[m["content"].split(":")[0]] == m["content"].split(": ")[1] for m in ok), ok[:3]
PY
grep -q "tools quickstart: on 64 held-out questions, ground-truth success" "$RUN.log" || fail "no summary line"
rm -f "$RUN.log"
echo "quickstart_tools_test: every stage produced its outputs"
