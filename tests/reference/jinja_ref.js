// Renders chat templates with @huggingface/jinja (the implementation transformers.js uses), the reference for
// rlaif's chat templates. Usage: node jinja_ref.js NPM_DIR CASES_JSON OUTPUT_JSONL
// CASES_JSON is a list of {"template": "...", "context": {...}}; each output line is {"text": "..."} or
// {"error": "..."} when the template raises or fails.
const fs = require('fs');
const path = require('path');
const [npmDir, casesPath, outPath] = process.argv.slice(2);
const { Template } = require(path.resolve(npmDir, 'node_modules', '@huggingface', 'jinja'));
const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
const cache = new Map();
const lines = cases.map(({ template, context }) => {
  try {
    if (!cache.has(template)) cache.set(template, new Template(template));
    return JSON.stringify({ text: cache.get(template).render(context) });
  } catch (e) {
    return JSON.stringify({ error: String(e && e.message ? e.message : e) });
  }
});
fs.writeFileSync(outPath, lines.join('\n') + '\n');
