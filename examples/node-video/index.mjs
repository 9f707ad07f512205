// Ask about a video: one frame per second is decoded by ffmpeg and streamed through the vision
// stages; each frame adds a single vision token.
//   node examples/node-video/index.mjs [video] [question] [model-dir]
// The default model (models/llava-mini-shapes) was trained on shapes pictures and clips: it counts
// the shapes of a clip reliably (its model card has the rest). live.mjs asks about a stream instead.
import { fileURLToPath } from 'node:url';
import { defaultModelDir, LlavaMini } from '@llava-mini/pipeline/node';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const [video = here('../assets/shapes.mp4'), question = 'How many shapes are there?', modelDir] = process.argv.slice(2);

const dir = modelDir ?? defaultModelDir();
const model = await LlavaMini.fromPretrained(dir, { device: 'cpu', maxFrames: 180 });
const answer = model.ask({ video }, question, {
  maxNewTokens: 32,
  onProgress: (e) => e.task === 'video' && process.stderr.write(`\rframe ${e.done}/${e.total}`),
});
let first = true;
for await (const token of answer) {
  if (first) process.stderr.write('\n');
  first = false;
  process.stdout.write(token.text);
}
const r = await answer.done();
console.log(`\n\n${r.llmInputTokens} LLM input rows for a ${r.promptTokenIds.length}-token prompt; video decode ${r.timings.inputMs.toFixed(0)} ms, encoder ${r.timings.encoderMs.toFixed(0)} ms, pre-fusion ${r.timings.prefusionMs.toFixed(0)} ms`);
await model.dispose();
