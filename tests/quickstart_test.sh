#!/usr/bin/env bash
# The quickstart, shortened (a few SFT and RL steps), end to end: every stage must leave its outputs.
# Usage: quickstart_test.sh RLAIF_BIN
set -euo pipefail
BIN=$(realpath "$1")
cd "$(dirname "$0")/.."
RUN=$(mktemp -d /tmp/rlaif-quickstart-XXXXXX)
trap 'rm -rf "$RUN"' EXIT
QUICKSTART_SKIP_SETUP=1 RLAIF_BIN="$BIN" RUN_DIR="$RUN" POLICY_SFT_STEPS=20 JUDGE_SFT_STEPS=20 RL_STEPS=3 \
  MIN_AGREEMENT=0 bash scripts/quickstart.sh > "$RUN.log" 2>&1 || { tail -40 "$RUN.log"; exit 1; }
fail() { echo "quickstart_test: $*"; tail -40 "$RUN.log"; exit 1; }
for f in task/prompts.jsonl task/judge_heldout.jsonl tokenizer/tokenizer.json policy/final/config.json \
         policy/final/model.safetensors judge/final/model.safetensors judge_eval.json grpo/judge_validation.json \
         grpo/metrics.jsonl grpo/samples.jsonl grpo/eval_samples.jsonl grpo/checkpoint-3/trainer_state.json \
         grpo/final/model.safetensors grpo/report.html; do
  [ -s "$RUN/$f" ] || fail "missing $f"
done
python3 - "$RUN" <<'PY' || fail "outputs are not as expected"
import json, sys
run = sys.argv[1]
ev = json.load(open(f"{run}/judge_eval.json"))
assert ev["samples"] == 200 and ev["judged"] == 200 and ev["injection_pairs"] > 0, ev
gate = json.load(open(f"{run}/grpo/judge_validation.json"))
assert gate["passed"] is True and gate["metric"] == "accuracy", gate
rows = [json.loads(l) for l in open(f"{run}/grpo/metrics.jsonl")]
steps = [r for r in rows if "reward" in r]
evals = [r for r in rows if "eval/reward" in r]
assert [r["step"] for r in steps] == [1, 2, 3], steps
assert [r["step"] for r in evals] == [0, 3], evals
assert all("eval/rewards/ground_truth/mean" in r for r in evals)
assert all("integrity/verifier_success_rate" in r and "kl" in r for r in steps)
html = open(f"{run}/grpo/report.html").read()
assert html.count('<svg class="chart"') == 8 and "before (step 0)" in html
PY
grep -q "quickstart: report in $RUN/grpo/report.html" "$RUN.log" || fail "no final line naming the report"
rm -f "$RUN.log"
echo "quickstart_test: every stage produced its outputs"
