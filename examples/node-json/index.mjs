// Answers as data: the answer is constrained, token by token, to JSON that a JSON Schema allows.
//   node examples/node-json/index.mjs [image] [model-dir]
// With the bundled demo model (models/llava-mini-shapes) and its shapes picture. That model was
// trained on one-word answers and has never seen JSON: what it writes always parses and fits the
// schema, but inside JSON its answers are wrong (purple for the red circle, which it names right
// without a schema; shapes that are not there); a model trained to write JSON is what makes the
// content right. What this shows is the mechanism: the answer is always data a program can read.
import { fileURLToPath } from 'node:url';
import { defaultModelDir, LlavaMini } from '@llava-mini/pipeline/node';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const [image = here('../assets/shapes.png'), modelDir = defaultModelDir()] = process.argv.slice(2);

const colors = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'];
const scene = {
  type: 'object',
  properties: {
    shapes: {
      type: 'array',
      minItems: 1,
      maxItems: 6,
      items: {
        type: 'object',
        properties: { color: { enum: colors }, shape: { enum: ['circle', 'square', 'triangle'] }, side: { enum: ['left', 'right'] } },
        required: ['color', 'shape', 'side'],
      },
    },
    count: { type: 'integer', minimum: 0, maximum: 9 },
  },
  required: ['shapes', 'count'],
};
const oneColor = { type: 'object', properties: { answer: { enum: colors } }, required: ['answer'] };

const model = await LlavaMini.fromPretrained(modelDir, { device: 'cpu' });
for (const [question, schema] of [
  ['What shapes are there?', scene],
  ['What color is the circle?', oneColor],
]) {
  // Six shapes of three fields take about 130 tokens: the budget leaves room for the longest answer the scene schema allows.
  const r = await model.ask(image, question, { maxNewTokens: 200, responseFormat: { type: 'json_schema', schema } }).done();
  const free = await model.ask(image, question, { maxNewTokens: 8 }).done();
  // 'stop': the JSON is complete and parses; 'length': the budget cut it short (no claim of validity).
  const json = r.finishReason === 'stop' ? JSON.stringify(JSON.parse(r.text)) : `${r.text} (cut short)`;
  console.log(`Q: ${question}\nJSON (${r.finishReason}): ${json}\nwithout a schema: ${free.text}\n`);
}
await model.dispose();
