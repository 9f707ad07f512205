// Answer a question about an image, streaming the answer, then print per-stage timings.
//   node examples/node-image/index.mjs [image] [question] [model-dir]
// Without a model folder it uses the bundled demo model (models/llava-mini-shapes), a tiny LLaVA-Mini
// trained on pictures of coloured circles, squares and triangles: it answers questions like
// "What color is the circle?", "How many shapes are there?", "Is there a red square?".
import { fileURLToPath } from 'node:url';
import { defaultModelDir, LlavaMini } from '@llava-mini/pipeline/node';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const [image = here('../assets/shapes.png'), question = 'What color is the circle?', modelDir = defaultModelDir()] = process.argv.slice(2);

const model = await LlavaMini.fromPretrained(modelDir, { device: 'cpu' });
process.stdout.write(`Q: ${question}\nA: `);
const answer = model.ask(image, question, { maxNewTokens: 32 });
for await (const token of answer) process.stdout.write(token.text);
const { timings, ids } = await answer.done();
console.log(`\n\n${ids.length} tokens; time to first token ${timings.timeToFirstTokenMs.toFixed(0)} ms, decode ${timings.decodeTokensPerSecond.toFixed(0)} tokens/s`);
console.log(`encoder ${timings.encoderMs.toFixed(1)} ms, compressor ${timings.compressorMs.toFixed(1)} ms, pre-fusion ${timings.prefusionMs.toFixed(1)} ms`);
await model.dispose();
