#!/usr/bin/env bash
# The quickstart: a complete RLAIF run, offline, on CPU. It makes a task with a hidden ground truth, a small policy
# (SFT from scratch) that follows its instruction only part of the time, and a small judge model trained on judgments;
# checks the judge against held-out labels (and an injection set), then improves the policy with GRPO where the reward
# is the judge's verdict, and writes an HTML report. The models are cached: a second run goes straight to RL.
#
# Knobs (environment): RUN_DIR (default runs/quickstart), POLICY_SFT_STEPS, JUDGE_SFT_STEPS, RL_STEPS, MIN_AGREEMENT
# (the CI integration test runs a few steps of each).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -n "${QUICKSTART_SKIP_SETUP:-}" ] || bash scripts/setup.sh
RUN="${RUN_DIR:-runs/quickstart}"
POLICY_SFT_STEPS="${POLICY_SFT_STEPS:-300}"
JUDGE_SFT_STEPS="${JUDGE_SFT_STEPS:-4000}"
RL_STEPS="${RL_STEPS:-150}"
MIN_AGREEMENT="${MIN_AGREEMENT:-0.9}"
BIN="${RLAIF_BIN:-build/rlaif}"
mkdir -p "$RUN"
start=$(date +%s)
stage() { echo; echo "== quickstart [$(( $(date +%s) - start ))s] $*"; }

# 1. The task: "Write a <positive|negative> one-sentence review of a <product>." The ground truth is a lexicon check
#    the judge never sees; each row's "reference" is that check as a regex, graded by the verifier below.
stage "1/6 task data"
[ -f "$RUN/task/prompts.jsonl" ] || $BIN demo-task --out "$RUN/task" --seed 0

# The judge's configuration: a small local model that writes a short rationale, then its pass/fail score, read from
# the score token's probabilities (docs/config.md, [judge] backend = "local").
cat > "$RUN/judge.toml" <<TOML
[judge]
backend = "local"
model_path = "$RUN/judge/final"
local_rationale_tokens = 24
[rubric]
pass_fail = "Is the review one fluent sentence about the product asked for, with the sentiment asked for?"
[template]
system = ""
user = "{prompt}\n{completion}"
TOML

# 2. A tokenizer for both small models, learnt from the task's text and the judge's rendered prompts.
stage "2/6 tokenizer and judge training data"
if [ ! -f "$RUN/tokenizer/tokenizer.json" ]; then
  $BIN judge render --config "$RUN/judge.toml" --in "$RUN/task/judge_train.jsonl" --out "$RUN/task/judge_sft.jsonl"
  $BIN train-tokenizer --corpus "$RUN/task/policy_sft.jsonl" --corpus "$RUN/task/judge_sft.jsonl" --vocab-size 512 \
    --out "$RUN/tokenizer"
fi

sft() {  # sft NAME DATA STEPS LR SIZE: a model trained from scratch with rlaif sft into $RUN/NAME/final (cached)
  local name=$1 data=$2 steps=$3 lr=$4 size=$5
  if [ -f "$RUN/$name/final/config.json" ]; then echo "$name: cached in $RUN/$name/final"; return; fi
  rm -rf "$RUN/$name"
  $BIN init-model --arch llama --size "$size" --seed 1 --tokenizer "$RUN/tokenizer" --out "$RUN/$name/init"
  cat > "$RUN/$name/sft.toml" <<TOML
[model]
path = "$RUN/$name/init"
[data]
prompts = "$data"
[train]
output_dir = "$RUN/$name"
max_steps = $steps
per_device_train_batch_size = 32
learning_rate = $lr
warmup_ratio = 0.05
lr_scheduler_type = "cosine"
save_steps = 0
logging_steps = 25
TOML
  $BIN sft --config "$RUN/$name/sft.toml"
}

# 3. The policy: fluent task-shaped reviews that follow the instruction ~45% of the time (its SFT data does).
stage "3/6 policy (rlaif sft from scratch)"
sft policy "$RUN/task/policy_sft.jsonl" "$POLICY_SFT_STEPS" 3e-3 hidden=128,layers=2,heads=4,kv_heads=2

# 4. The judge: trained on rendered judge prompts and verdicts, then used through the normal judge path.
stage "4/6 judge model (rlaif sft on judgments)"
sft judge "$RUN/task/judge_sft.jsonl" "$JUDGE_SFT_STEPS" 3e-3 hidden=128,layers=3,heads=4,kv_heads=2

stage "5/6 judge check: agreement with held-out ground truth, injection shift"
$BIN judge eval --config "$RUN/judge.toml" --labels "$RUN/task/judge_heldout.jsonl" \
  --injections tests/data/judge_injections.jsonl --report "$RUN/judge_eval.json" > /dev/null
python3 - "$RUN/judge_eval.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"judge: accuracy {r['accuracy']:.3f}, Cohen's kappa {r['cohen_kappa']:.3f}, Spearman {r['spearman']:.3f} on "
      f"{r['judged']}/{r['samples']} held-out samples; injection set: mean score shift {r['injection_shift']:+.3f} "
      f"({r['injection_raised']:.0%} of {r['injection_pairs']} injected samples scored higher)")
PY

# 5. GRPO with the judge's score as the reward. The pre-flight gate re-checks the judge and refuses to train below
#    MIN_AGREEMENT; the verifier (weight 0: reported, not rewarded) is the hidden ground truth.
stage "6/6 GRPO with the judge as the reward"
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
max_completion_length = 20
temperature = 1.0
learning_rate = 1e-3
lr_scheduler_type = "constant"
beta = 0.04
save_steps = 50
eval_steps = 25
eval_samples = 48
integrity_verifier = "ground_truth"
judge_eval_labels = "$RUN/task/judge_heldout.jsonl"
judge_eval_injections = "tests/data/judge_injections.jsonl"
judge_min_agreement = $MIN_AGREEMENT
$(sed -n '/^\[judge\]/,$p' "$RUN/judge.toml")
[[graders]]
name = "ground_truth"
type = "regex"
value = "{reference_regex}"
weight = 0
TOML
rm -rf "$RUN/grpo"
$BIN train --config "$RUN/run.toml"
$BIN report "$RUN/grpo"
python3 - "$RUN/grpo/metrics.jsonl" "$(( $(date +%s) - start ))" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
ev = [r for r in rows if "eval/reward" in r]
first, last = ev[0], ev[-1]
gt = "eval/rewards/ground_truth/mean"
kl = [r["kl"] for r in rows if "kl" in r]
print(f"\nquickstart: held-out judge score {first['eval/reward']:.3f} -> {last['eval/reward']:.3f}, ground-truth success "
      f"{first[gt]:.0%} -> {last[gt]:.0%} (step {first['step']} -> {last['step']}), final KL {kl[-1]:.4f}; "
      f"{sys.argv[2]} s in all")
PY
echo "quickstart: report in $RUN/grpo/report.html (open it in a browser); metrics in $RUN/grpo/metrics.jsonl"
