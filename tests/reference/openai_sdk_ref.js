// Drives `rlaif serve` with the official OpenAI Node SDK (npm openai), as a user's application would, and writes what
// the SDK returned as JSON for the C++ test to check: models, chat (with logprobs), streaming, completions, an
// OpenAI-style error, a wrong key, and response_format json_object / json_schema.
// Usage: node openai_sdk_ref.js NPM_DIR BASE_URL API_KEY OUT.json
const fs = require('fs');
const path = require('path');
const [npmDir, baseURL, apiKey, out] = process.argv.slice(2);
const { OpenAI } = require(path.resolve(npmDir, 'node_modules', 'openai'));

const schema = {
  type: 'object',
  properties: { score: { type: 'integer', minimum: 1, maximum: 5 }, label: { enum: ['good', 'bad'] } },
  required: ['score', 'label'],
  additionalProperties: false,
};

// An SDK error as the fields an application reads.
const described = (e) => ({ api_error: e instanceof OpenAI.APIError, status: e.status, type: e.type, param: e.param, code: e.code });

async function main() {
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120000 });
  const r = {};
  const models = await client.models.list();
  r.models = models.data.map((m) => m.id);
  const model = r.models[0];
  const messages = [{ role: 'user', content: 'Write a sentence.' }];

  const chat = await client.chat.completions.create({
    model, messages, max_tokens: 24, temperature: 0, seed: 1, logprobs: true, top_logprobs: 3,
  });
  const c0 = chat.choices[0];
  r.chat = { object: chat.object, content: c0.message.content, role: c0.message.role, finish: c0.finish_reason,
    logprobs: c0.logprobs.content.map((t) => ({ token: t.token, logprob: t.logprob, top: t.top_logprobs.length })),
    usage: chat.usage };

  const stream = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0, seed: 1, stream: true });
  r.stream = { text: '', chunks: 0, finish: null };
  for await (const chunk of stream) {
    r.stream.chunks += 1;
    const choice = chunk.choices[0];
    if (choice && choice.delta && choice.delta.content) r.stream.text += choice.delta.content;
    if (choice && choice.finish_reason) r.stream.finish = choice.finish_reason;
  }

  const completion = await client.completions.create({ model, prompt: 'Once upon', max_tokens: 16, temperature: 0, logprobs: 2 });
  r.completion = { object: completion.object, text: completion.choices[0].text, tokens: completion.choices[0].logprobs.tokens.length };

  try {
    await client.chat.completions.create({ model, messages, max_tokens: 100000 });
    r.error = null;
  } catch (e) {
    r.error = described(e);
  }
  try {
    await new OpenAI({ baseURL, apiKey: 'wrong', maxRetries: 0 }).models.list();
    r.auth_error = null;
  } catch (e) {
    r.auth_error = described(e);
  }

  const obj = await client.chat.completions.create({
    model, messages, max_tokens: 200, n: 4, seed: 2, response_format: { type: 'json_object' },
  });
  r.json_object = obj.choices.map((c) => ({ finish: c.finish_reason, content: c.message.content }));
  const sch = await client.chat.completions.create({
    model, messages, max_tokens: 200, n: 8, seed: 2,
    response_format: { type: 'json_schema', json_schema: { name: 'verdict', schema, strict: true } },
  });
  r.json_schema = sch.choices.map((c) => ({ finish: c.finish_reason, content: c.message.content }));
  fs.writeFileSync(out, JSON.stringify(r));
}

main().catch((e) => {
  console.error(`openai_sdk_ref: ${e.stack || e}`);
  process.exit(1);
});
