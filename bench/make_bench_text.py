"""Writes the mixed benchmark text for bench_tokenizer and tokenizers_bench.js: documents of about 4 KB separated by
NUL bytes. Sources, all on a Debian machine with python3: Python's standard library (code, comments and English
docstrings, files in sorted order) and rlaif's adversarial tokenizer corpus (many scripts, emoji, whitespace runs),
repeated with a fixed shuffle. Usage: python3 make_bench_text.py CORPUS_JSONL OUT [MEGABYTES]"""
import glob, json, random, sys

corpus_path, out_path = sys.argv[1], sys.argv[2]
target = int(float(sys.argv[3]) * 1e6) if len(sys.argv) > 3 else 12_000_000
rng = random.Random(1234)
corpus = [json.loads(l) for l in open(corpus_path, encoding="utf-8") if l.strip()]
code = []
for path in sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True)):
    try:
        code.append(open(path, encoding="utf-8").read())
    except (UnicodeDecodeError, OSError):
        pass
docs, size, ci = [], 0, 0
while size < target:
    if rng.random() < 0.2:  # a multilingual document from the corpus
        lines = [rng.choice(corpus) for _ in range(40)]
        doc = "\n".join(lines)
    else:
        doc = code[ci % len(code)][:4096]
        ci += 1
    doc = doc.replace("\0", "")
    docs.append(doc)
    size += len(doc.encode("utf-8")) + 1
with open(out_path, "w", encoding="utf-8") as f:
    f.write("\0".join(docs))
