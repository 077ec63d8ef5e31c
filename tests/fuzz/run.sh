#!/usr/bin/env bash
# Builds the tokenizer fuzz target with clang's libFuzzer and AddressSanitizer (the tokenizer sources only; no
# libtorch) and runs it for SECONDS (default 180) on 2 workers, seeded with the tokenizer corpus and real
# tokenizer.json files when the npm references are installed. Usage: bash tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-180}"
build="${2:-build}"
out="$build/fuzz"
mkdir -p "$out/corpus"
command -v clang++ >/dev/null || { echo "run.sh: clang++ is needed (apt-get install clang)" >&2; exit 1; }
clang++ -std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude -Isrc \
  tests/fuzz/fuzz_tokenizer.cpp src/tokenizer/{unicode,regex,normalizers,pre_tokenizers,decoders,bpe,added_vocab,tokenizer}.cpp \
  src/core/error.cpp src/core/atomic_file.cpp $(pkg-config --cflags --libs libpcre2-8 libutf8proc) -o "$out/fuzz_tokenizer"
# Seeds: corpus lines (mode byte 0 and 1) and small tokenizer.json files (mode byte 2).
/usr/bin/python3 - "$out/corpus" <<'PY'
import json, sys, os, hashlib
out = sys.argv[1]
for i, line in enumerate(open("tests/data/tokenizer_corpus.jsonl", encoding="utf-8")):
    s = json.loads(line).encode("utf-8", "surrogatepass")
    for mode in (b"\x00", b"\x01"):
        open(os.path.join(out, hashlib.sha1(mode + s).hexdigest()), "wb").write(mode + s)
tok = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]},
       "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated"},
       "decoder": {"type": "Fuse"}, "added_tokens": [{"id": 3, "content": "<x>", "special": True}]}
open(os.path.join(out, "tok"), "wb").write(b"\x02" + json.dumps(tok).encode())
PY
rm -f "$out"/fuzz-*.log
# -jobs writes fuzz-N.log into the current folder: run from $out.
(cd "$out" && ./fuzz_tokenizer -max_total_time="$secs" -max_len=4096 -jobs=2 -workers=2 -print_final_stats=1 \
  -artifact_prefix=./ corpus >/dev/null 2>&1 || true)
grep -h "stat::number_of_executed_units" "$out"/fuzz-*.log | awk '{s+=$2} END {print "executions:", s}'
if ls "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* 2>/dev/null; then
  grep -h -A5 "ERROR\|invariant" "$out"/fuzz-*.log | head -40
  exit 1
fi
echo "no crashes"
