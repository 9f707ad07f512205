// Answers as data: the answer is constrained, token by token, to JSON that a JSON Schema allows.
//   node examples/node-json/index.mjs [image] [model-dir]
// With the bundled demo model (models/llava-mini-shapes) and its shapes picture. That model was
// trained on one-word answers and has never seen JSON: what it writes always parses and fits the
// schema, but inside JSON its answers are often wrong (it answers right without a schema); a model
// trained to write JSON is what makes the content right.
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
  const r = await model.ask(image, question, { maxNewTokens: 120, responseFormat: { type: 'json_schema', schema } }).done();
  const free = await model.ask(image, question, { maxNewTokens: 8 }).done();
  // finishReason 'length' would mean the budget cut the JSON short; 'stop': it is complete and parses.
  console.log(`Q: ${question}\nJSON (${r.finishReason}): ${JSON.stringify(JSON.parse(r.text))}\nwithout a schema: ${free.text}\n`);
}
await model.dispose();
