import { defineConfig } from 'vite';

// Cross-origin isolation lets onnxruntime-web's WASM backend use threads (SharedArrayBuffer).
const isolation = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

export default defineConfig({
  server: { headers: isolation, host: 'localhost' },
  preview: { headers: isolation, host: 'localhost' },
  worker: { format: 'es' },
  // onnxruntime-web finds its .wasm beside its own module; pre-bundling would move the module away from it.
  optimizeDeps: { exclude: ['onnxruntime-web'] },
  build: { target: 'es2022' },
});
