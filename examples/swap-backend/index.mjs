// The same question on onnxruntime-node (CPU) and onnxruntime-web (WASM, which is also what a
// browser without WebGPU runs): same graphs, same weights, same answer.
//   node examples/swap-backend/index.mjs [image] [question] [model-dir]
import { fileURLToPath } from 'node:url';
import { defaultModelDir, LlavaMini } from '@llava-mini/pipeline/node';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
// Default: the bundled shapes model (models/llava-mini-shapes) and its example picture.
const [image = here('../assets/shapes.png'), question = 'How many shapes are there?', dir = defaultModelDir()] = process.argv.slice(2);

const answers = {};
for (const device of ['cpu', 'wasm']) {
  const model = await LlavaMini.fromPretrained(dir, { device });
  const r = await model.ask(image, question, { maxNewTokens: 16 }).done();
  answers[device] = r.ids;
  console.log(`${device.padEnd(4)} ${JSON.stringify(r.text)}  ids ${r.ids.join(' ')}  (${r.timings.totalMs.toFixed(0)} ms)`);
  await model.dispose();
}
const same = answers.cpu.join() === answers.wasm.join();
console.log(same ? 'same answer on both backends' : 'the backends disagree');
process.exitCode = same ? 0 : 1;
