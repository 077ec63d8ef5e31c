// Encode throughput of Hugging Face's tokenizers (npm `tokenizers`, the Rust core) on the same documents as
// bench_tokenizer. Threads: set RAYON_NUM_THREADS. Usage: node tokenizers_bench.js NPM_DIR TOKENIZER_JSON TEXT [REPEAT]
// Prints: "hf <threads> <MB> <best seconds> <MB/s> <tokens>"
const fs = require('fs');
const path = require('path');
const [npmDir, tokPath, textPath, repeatArg] = process.argv.slice(2);
const { Tokenizer } = require(path.resolve(npmDir, 'node_modules', 'tokenizers'));
const tok = Tokenizer.fromFile(tokPath);
const buf = fs.readFileSync(textPath);
const docs = buf.toString('utf8').split('\0').filter((d) => d.length > 0);
const repeat = Number(repeatArg || 3);
(async () => {
  let best = Infinity, tokens = 0;
  for (let r = 0; r < repeat; ++r) {
    const t0 = process.hrtime.bigint();
    const encs = await tok.encodeBatch(docs, { addSpecialTokens: false });
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    best = Math.min(best, s);
    tokens = 0;
    for (const e of encs) tokens += e.getIds().length;
  }
  const mb = buf.length / 1e6;
  console.log(`hf ${process.env.RAYON_NUM_THREADS || 'all'} ${mb.toFixed(2)} ${best.toFixed(3)} ${(mb / best).toFixed(2)} ${tokens}`);
})();
