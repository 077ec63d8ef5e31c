#!/usr/bin/env bash
# Builds libFuzzer targets with clang (AddressSanitizer and UndefinedBehaviorSanitizer, the parsers' own sources, no
# libtorch) and runs each for SECONDS (default 180) on 2 workers from its committed seeds (tests/fuzz/seeds/TARGET;
# the tokenizer also from the tokenizer corpus). Fails on any crash, leak, timeout or out-of-memory input, printing
# it. Usage: bash tests/fuzz/run.sh [SECONDS] [BUILD_DIR] [TARGET...]; targets: tokenizer verdict jsonl chat_template
# judge_toml command_output safetensors model_config run_toml serve_request json_schema.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs="${1:-180}"
build="${2:-build}"
shift $(( $# < 2 ? $# : 2 ))
targets=("$@")
[ "${#targets[@]}" -gt 0 ] ||
  targets=(tokenizer verdict jsonl chat_template judge_toml command_output safetensors model_config run_toml serve_request json_schema)
command -v clang++ >/dev/null || { echo "run.sh: clang++ is needed (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

tokenizer_src="src/tokenizer/{normalizers,pre_tokenizers,decoders,bpe,added_vocab,tokenizer}.cpp src/io/json_file.cpp"
judge_config_src="$tokenizer_src src/judge/{judge_config,graders,content_check,rubric,judge_prompt,verdict}.cpp"
declare -A sources=(
  [tokenizer]="$tokenizer_src"
  [verdict]="src/judge/verdict.cpp src/judge/rubric.cpp"
  [jsonl]="src/io/jsonl.cpp"
  [chat_template]="$tokenizer_src src/tokenizer/chat_template.cpp src/jinja/{parser,interpreter,value}.cpp"
  [judge_toml]="$judge_config_src"
  [command_output]="src/judge/command_backend.cpp src/judge/rubric.cpp src/core/subprocess.cpp"
  [safetensors]="src/io/safetensors_header.cpp"
  [model_config]="src/model/config.cpp src/io/json_file.cpp"
  [run_toml]="$judge_config_src src/train/train_config.cpp src/env/env_config.cpp src/rl/rl_options.cpp src/model/lora_config.cpp src/core/cpu_features.cpp"
  [serve_request]="src/serve/serve_request.cpp src/generate/json_schema.cpp"
  [json_schema]="src/generate/json_schema.cpp $tokenizer_src"
)
# The TOML targets link Debian's toml++ library, as rlaif does (its header-only debug build asserts on some malformed
# keys that the release library reports as errors).
declare -A libs=([judge_toml]="tomlplusplus" [run_toml]="tomlplusplus")

flags=(-std=c++17 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iinclude -Isrc)
# Each source is compiled once per run (several targets share the tokenizer's and the judge config's), into a folder
# emptied first so that no object outlives a change to a header.
objs="$build/fuzz/obj"
rm -rf "$objs"
mkdir -p "$objs"
object() {  # prints the object of source $1, compiling it on first use (a fuzz target's own file: -fsanitize=fuzzer)
  local o="$objs/$(echo "$1" | tr / _).o"
  [ -f "$o" ] || clang++ "${flags[@]}" $(pkg-config --cflags libpcre2-8 libutf8proc tomlplusplus) -c "$1" -o "$o"
  echo "$o"
}

status=0
for t in "${targets[@]}"; do
  [ -n "${sources[$t]:-}" ] || { echo "run.sh: unknown target $t" >&2; exit 2; }
  out="$build/fuzz/$t"
  rm -rf "$out/corpus"
  mkdir -p "$out/corpus"
  eval "srcs=(${sources[$t]})"
  o=()
  for s in "tests/fuzz/fuzz_$t.cpp" "${srcs[@]}" src/core/error.cpp src/core/atomic_file.cpp src/core/unicode.cpp \
    src/core/regex.cpp; do
    o+=("$(object "$s")")
  done
  clang++ "${flags[@]}" "${o[@]}" $(pkg-config --libs libpcre2-8 libutf8proc ${libs[$t]:-}) -o "$out/fuzz_$t"
  cp tests/fuzz/seeds/"$t"/* "$out/corpus/"
  if [ "$t" = tokenizer ]; then  # corpus lines (mode bytes 0 and 1)
    /usr/bin/python3 - "$out/corpus" <<'PY'
import json, sys, os, hashlib
out = sys.argv[1]
for line in open("tests/data/tokenizer_corpus.jsonl", encoding="utf-8"):
    s = json.loads(line).encode("utf-8", "surrogatepass")
    for mode in (b"\x00", b"\x01"):
        open(os.path.join(out, hashlib.sha1(mode + s).hexdigest()), "wb").write(mode + s)
PY
  fi
  rm -f "$out"/fuzz-*.log "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*
  # -jobs writes fuzz-N.log into the current folder: run from $out.
  (cd "$out" && "./fuzz_$t" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -jobs=2 \
    -workers=2 -print_final_stats=1 -artifact_prefix=./ corpus >/dev/null 2>&1 || true)
  runs=$(grep -h "stat::number_of_executed_units" "$out"/fuzz-*.log | awk '{s+=$2} END {print s+0}')
  found=$(find "$out" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
  if [ -n "$found" ]; then
    echo "fuzz $t: $runs executions in ${secs}s: FOUND"
    echo "$found"
    grep -h -A12 "ERROR\|runtime error\|invariant\|ALARM" "$out"/fuzz-*.log | head -40
    status=1
  else
    echo "fuzz $t: $runs executions in ${secs}s, no crash"
  fi
done
exit $status
