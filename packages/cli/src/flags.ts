// Flags several commands share, with their allowed values.
import { Option } from 'commander';
import { DTYPE_NAMES } from '@llava-mini/pipeline';

/** A weight-type flag: fp32, fp16, q8 or q4. */
export const dtypeOption = (flag: string, what: string) => new Option(flag, what).choices([...DTYPE_NAMES]);

/** `--device`: where the graphs run (auto picks the fastest that works). */
export const deviceOption = (what: string, fallback: string) => new Option('--device <device>', what).choices(['auto', 'cpu', 'cuda', 'webgpu', 'wasm']).default(fallback);
