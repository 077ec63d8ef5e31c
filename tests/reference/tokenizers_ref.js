// Hugging Face's tokenizers (the Rust core, npm package `tokenizers`) on a list of texts: the reference that
// rlaif's tokenizer must match exactly.
// Usage: node tokenizers_ref.js NPM_DIR TOKENIZER_JSON INPUT_JSON OUTPUT_JSONL
// INPUT_JSON is a list of strings; each output line is
// {"ids": [...], "ids_special": [...], "decoded": "...", "decoded_skip": "..."}
// (ids without and with add_special_tokens; decode of ids_special without and with skip_special_tokens).
const fs = require('fs');
const path = require('path');
const [npmDir, tokPath, inPath, outPath] = process.argv.slice(2);
const { Tokenizer } = require(path.resolve(npmDir, 'node_modules', 'tokenizers'));
const tok = Tokenizer.fromFile(tokPath);
const texts = JSON.parse(fs.readFileSync(inPath, 'utf8'));
(async () => {
  const plain = await tok.encodeBatch(texts, { addSpecialTokens: false });
  const special = await tok.encodeBatch(texts, { addSpecialTokens: true });
  const ids = plain.map((e) => e.getIds());
  const idsSpecial = special.map((e) => e.getIds());
  const decoded = await tok.decodeBatch(idsSpecial, false);
  const decodedSkip = await tok.decodeBatch(idsSpecial, true);
  const lines = texts.map((_, i) => JSON.stringify({ ids: ids[i], ids_special: idsSpecial[i], decoded: decoded[i], decoded_skip: decodedSkip[i] }));
  fs.writeFileSync(outPath, lines.join('\n') + '\n');
})().catch((e) => { console.error(e); process.exit(1); });
