// Watch a stream and ask about it while it plays: a video file is played in real time as if it were
// a camera, each frame is encoded once as it arrives, and every 2 seconds a question is asked about
// the last few seconds (the window), which moves on with the stream.
//   node examples/node-video/live.mjs [video|stream URL|/dev/videoN] [question] [model-dir]
import { fileURLToPath } from 'node:url';
import { defaultModelDir, liveVideoFrames, LlavaMini } from '@llava-mini/pipeline/node';

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const [source = here('../assets/shapes.mp4'), question = 'How many shapes are there?', modelDir] = process.argv.slice(2);

const model = await LlavaMini.fromPretrained(modelDir ?? defaultModelDir(), { device: 'cpu' });
const live = model.live({ windowSeconds: 3 });
const stop = new AbortController();
process.once('SIGINT', () => stop.abort());

// The stream runs on its own; questions never hold it up (a frame the encoder has no time for is dropped and counted).
const playing = live.follow(liveVideoFrames(source, { signal: stop.signal }), { signal: stop.signal });
let ended = false;
playing.finally(() => (ended = true));

while (!ended) {
  await new Promise((r) => setTimeout(r, 2000));
  if (live.window.frames === 0) continue;
  const { text, window } = await live.ask(question, { maxNewTokens: 16 }).done();
  console.log(`${window.from}-${window.to} s (${window.frames} frames): ${text}`);
}
await playing;
const { received, encoded, dropped, encodeMs } = live.stats;
console.log(`${received} frames received, ${encoded} encoded (${(encodeMs / Math.max(1, encoded)).toFixed(0)} ms each), ${dropped} dropped`);
live.dispose();
await model.dispose();
