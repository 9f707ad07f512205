// Node-only helpers of @llava-mini/core: the onnxruntime-node backend, files, safetensors on disk.
export * from './index.js';
export { nodeBackend } from './backends/node.js';
export { DEFAULT_DATA_CHUNK_BYTES, ExternalDataWriter, makeDirs, saveModel, tempPathFor, writeFileAtomic } from './node/files.js';
export { isAlive } from './node/process.js';
export { Checkpoint, INDEX_FILE, SafetensorsFile, SINGLE_FILE, writeCheckpoint, writeSafetensors } from './node/safetensors.js';
export type { WritableTensor } from './node/safetensors.js';
