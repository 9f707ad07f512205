// Answer a question about an image, streaming the answer, then print per-stage timings.
//   node examples/node-image/index.mjs [image] [question] [model-dir]
// Without a model folder it makes a random-weight tiny model first: its answers are noise.
import { fileURLToPath } from 'node:url';
import { ensureTinyModel, LlavaMini } from '@llava-mini/pipeline/node';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const [image = here('../assets/house.png'), question = 'What is in this picture?', modelDir] = process.argv.slice(2);

const dir = modelDir ?? (await ensureTinyModel(here('../../.cache/tiny-model')));
const model = await LlavaMini.fromPretrained(dir, { device: 'cpu' });
process.stdout.write(`Q: ${question}\nA: `);
const answer = model.ask(image, question, { maxNewTokens: 32 });
for await (const token of answer) process.stdout.write(token.text);
const { timings, ids } = await answer.done();
console.log(`\n\n${ids.length} tokens; time to first token ${timings.timeToFirstTokenMs.toFixed(0)} ms, decode ${timings.decodeTokensPerSecond.toFixed(0)} tokens/s`);
console.log(`encoder ${timings.encoderMs.toFixed(1)} ms, compressor ${timings.compressorMs.toFixed(1)} ms, pre-fusion ${timings.prefusionMs.toFixed(1)} ms`);
if (!modelDir) console.log('(random-weight tiny model: the text is noise; pass a converted model folder as the third argument)');
await model.dispose();
