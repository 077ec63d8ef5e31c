// Reads a GGUF file with Hugging Face's GGUF reader (@huggingface/gguf, an implementation independent of rlaif's
// writer) and writes what it found as JSON:
//   {"metadata": {key: {"type": T, "value": V, "subType": S}}, "tensors": [{"name", "shape", "dtype", "offset"}],
//    "tensor_data_offset": N}
// with ggml's value and tensor type numbers. Usage: node gguf_ref.js NPM_DIR FILE.gguf OUT.json
const fs = require('fs');
const path = require('path');
const [npmDir, file, out] = process.argv.slice(2);
// The reader decodes strings with a default TextDecoder, which drops a leading U+FEFF; a vocabulary may hold that
// character as a token (Llama 2's does), so strings are decoded with ignoreBOM, byte for byte.
const PlainDecoder = globalThis.TextDecoder;
globalThis.TextDecoder = class extends PlainDecoder {
  constructor(label, options) { super(label, Object.assign({}, options, { ignoreBOM: true })); }
};
const { gguf } = require(path.resolve(npmDir, 'node_modules', '@huggingface', 'gguf'));
const plain = (k, v) => (typeof v === 'bigint' ? Number(v) : v);

gguf(path.resolve(file), { allowLocalFile: true, typedMetadata: true }).then((r) => {
  const tensors = r.tensorInfos.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, offset: t.offset }));
  const result = { metadata: r.typedMetadata, tensors, tensor_data_offset: r.tensorDataOffset };
  fs.writeFileSync(out, JSON.stringify(result, plain));
}).catch((e) => {
  console.error(`gguf_ref: ${file}: ${e.message}`);
  process.exit(1);
});
