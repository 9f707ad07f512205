// (Re)writes the demo model's bundled media from the shapes world, so they stay what the model was
// taught on (the examples, the browser page and its test ask about them):
//   examples/assets/shapes.png  demoScene(): a red circle left, a blue square right, a green triangle bottom right
//   examples/assets/shapes.mp4  demoClip(): a red circle moving right past a blue square that stays, 6 frames at 1 fps
//   node scripts/demo-assets.mjs            (after a build: it imports @llava-mini/shapes' dist)
// examples/assets/clip.mp4 is another clip (tests decode it) and is not written here.
import { writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { demoClip, demoScene, renderScene, writeClipVideo } from '@llava-mini/shapes';

const assets = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/assets');
const picture = path.join(assets, 'shapes.png');
const clip = path.join(assets, 'shapes.mp4');

writeFileSync(picture, await renderScene(demoScene()));
// Through the same ffmpeg the runtime decodes with: H.264 in MP4, yuv420p (what browsers play).
await writeClipVideo(demoClip(), clip);
console.log(`wrote ${path.relative(process.cwd(), picture)} and ${path.relative(process.cwd(), clip)}`);
