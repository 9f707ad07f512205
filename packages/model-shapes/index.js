import { fileURLToPath } from 'node:url';

/** The model's folder (Hugging Face layout), for `LlavaMini.fromPretrained` or `--model`. */
export const modelDir = fileURLToPath(new URL('./model', import.meta.url));
