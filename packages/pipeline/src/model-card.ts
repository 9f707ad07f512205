// The README.md a conversion writes beside its manifest: a Hugging Face model card, so that the
// folder can be uploaded to the hub as it is and says where its weights came from and under which
// license (the converter changes their format, never their terms).
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Manifest } from './manifest.js';

export const MODEL_CARD_FILE = 'README.md';

/** What a conversion was made from: a hub repository at a commit, or a folder. */
export interface ConversionSource {
  /** `org/name` for a hub repository, else the folder's name. */
  name: string;
  commit?: string;
  /** Whether `name` is a hub repository (then the card links it as `base_model`). */
  hub?: boolean;
}

/** The `license:` of a model card's front matter (the source checkpoint's README.md), if it has one. */
export function readLicense(dir: string): string | undefined {
  const file = path.join(dir, MODEL_CARD_FILE);
  if (!fs.existsSync(file)) return undefined;
  const front = /^---\r?\n([\s\S]*?)\r?\n---/.exec(fs.readFileSync(file, 'utf8'))?.[1];
  const license = front && /^license:\s*(.+)$/m.exec(front)?.[1]?.trim().replace(/^["']|["']$/g, '');
  return license || undefined;
}

export function modelCard(manifest: Manifest, source: ConversionSource, license: string | undefined): string {
  const tower = manifest.config.mm_vision_tower;
  const dtypes = [...new Set(Object.values(manifest.stages).map((s) => s.dtype))].join(', ');
  const from = source.hub ? `[${source.name}](https://huggingface.co/${source.name})` : `\`${source.name}\``;
  const front = ['---', `license: ${license ?? 'other'}`, ...(source.hub ? [`base_model: ${source.name}`] : []), 'library_name: llava-mini', 'tags:', '  - llava-mini', '  - onnx', '---'];
  return [
    ...front,
    '',
    `# ${source.name.split('/').pop()} (ONNX, ${dtypes}, for ${manifest.target})`,
    '',
    `LLaVA-Mini converted to ONNX by \`llava-mini convert\` (${manifest.format} ${manifest.version}) from ${from}${source.commit ? ` at commit \`${source.commit}\`` : ''}.`,
    `The weights are the source's, in another format and dtype (${dtypes}); they stay under its license: ${license ? `\`${license}\`` : 'see the source, whose card names none here'}.`,
    ...(typeof tower === 'string' ? [`The vision tower's weights come from \`${tower}\` (named by the source's \`mm_vision_tower\`), under that repository's own license.`] : []),
    '',
    `Each graph's weights are in external-data files beside it (\`<graph>.onnx.data\`, \`.data.1\`, ...), split so that a browser`,
    'holds no file larger than the chunk the conversion was given (512 MiB unless changed) and no tensor larger than that.',
    '',
    'Load it with `LlavaMini.fromPretrained(...)` from `@llava-mini/pipeline` (this folder, its URL, or its hub id) or',
    '`npx llava-mini ask --model ...`. `manifest.json` lists every file with its size and sha256.',
    '',
  ].join('\n');
}
