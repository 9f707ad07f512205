import { describe, expect, it, vi } from 'vitest';
import { decodeModel, DeviceUnavailableError, Graph, InvalidOptionError, SessionError, tensor } from '../src/index.js';
import { nodeBackend } from '../src/node.js';
import { webBackend } from '../src/web.js';

function addModel(): Uint8Array {
  const g = new Graph();
  const x = g.input('x', 'float32', [2]);
  g.output(g.add(x, x), 'y', 'float32');
  return g.toBytes();
}

describe('device probing', () => {
  it('lists every device of both backends with a status; cpu and wasm work here', async () => {
    const node = await (await nodeBackend()).probe();
    expect(node.map((d) => d.device)).toEqual(['cuda', 'cpu', 'webgpu']);
    expect(node.find((d) => d.device === 'cpu')?.available).toBe(true);
    const web = await (await webBackend()).probe();
    expect(web.map((d) => d.device)).toEqual(['webgpu', 'wasm']);
    expect(web.find((d) => d.device === 'wasm')?.available).toBe(true);
    // Node has no navigator.gpu, so the browser WebGPU path is refused before onnxruntime is asked.
    expect(web.find((d) => d.device === 'webgpu')).toMatchObject({ available: false, reason: expect.stringMatching(/navigator\.gpu/) });
    for (const d of [...node, ...web]) if (!d.available) expect(d.hint).toBeTruthy();
  });

  it("asking for a device that cannot run here is a typed error that says how to get it", async () => {
    const backend = await nodeBackend();
    const cuda = (await backend.probe()).find((d) => d.device === 'cuda');
    if (cuda?.available) return; // a GPU machine: nothing to refuse
    const err = await backend.createSession(addModel(), { device: 'cuda' }).catch((e) => e);
    expect(err).toBeInstanceOf(DeviceUnavailableError);
    expect(err.device).toBe('cuda');
    expect(err.message).toMatch(/ONNXRUNTIME_NODE_INSTALL=cuda12/);
    const web = await webBackend();
    await expect(web.createSession(addModel(), { device: 'webgpu' })).rejects.toThrow(DeviceUnavailableError);
  });

  it("'auto' falls back to a working device and logs what it passed over", async () => {
    const backend = await webBackend();
    const logger = vi.fn();
    const s = await backend.createSession(addModel(), { device: 'auto', logger });
    expect(s.device).toBe('wasm');
    expect(s.executionProvider).toBe('wasm');
    expect(logger).toHaveBeenCalledWith(expect.stringMatching(/uses 'wasm'.*webgpu:/));
    const y = await s.run({ x: tensor('float32', [2], Float32Array.of(1.5, -2)) });
    expect(Array.from(y.y.data as Float32Array)).toEqual([3, -4]);
    await s.dispose();
  });

  it('refuses devices of the other backend and unknown names', async () => {
    await expect((await nodeBackend()).createSession(addModel(), { device: 'wasm' })).rejects.toThrow(InvalidOptionError);
    await expect((await webBackend()).createSession(addModel(), { device: 'gpu' as never })).rejects.toThrow(/not one of onnxruntime-web's devices/);
  });
});

describe('sessions', () => {
  it('wraps a corrupt model and a bad run in SessionError, with the native message as cause', async () => {
    for (const backend of [await nodeBackend(), await webBackend()]) {
      const device = backend.name === 'onnxruntime-node' ? 'cpu' : 'wasm';
      const err = await backend.createSession(Uint8Array.of(1, 2, 3, 4, 5), { device }).catch((e) => e);
      expect(err).toBeInstanceOf(SessionError);
      expect(err.cause).toBeDefined();
      const s = await backend.createSession(addModel(), { device });
      await expect(s.run({ x: tensor('float32', [3]) })).rejects.toThrow(SessionError);
      await expect(s.run({})).rejects.toThrow(/missing model inputs: x/);
      await s.dispose();
      await expect(s.run({ x: tensor('float32', [2]) })).rejects.toThrow(/disposed/);
    }
  });

  it('writes into preallocated outputs (the shared-buffer KV cache pattern)', async () => {
    for (const backend of [await nodeBackend(), await webBackend()]) {
      const device = backend.name === 'onnxruntime-node' ? 'cpu' : 'wasm';
      const s = await backend.createSession(addModel(), { device });
      const out = tensor('float32', [2]);
      const res = await s.run({ x: tensor('float32', [2], Float32Array.of(2, 3)) }, { y: out });
      expect(Array.from(out.data)).toEqual([4, 6]);
      expect(res.y).toBe(out);
      // onnxruntime-node wrote into `out` itself: nothing is copied back (WASM needs the copy).
      expect(s.traffic).toEqual({ fetchedBytes: 8, copiedBytes: backend.name === 'onnxruntime-node' ? 0 : 8, uploadedBytes: 0, downloadedBytes: 0 });
      await s.dispose();
    }
  });

  it("says where GroupQueryAttention is the LLM's prompt kernel: node's CPU, not WASM (bench/RESULTS.md, 'Long contexts')", async () => {
    const cpu = await (await nodeBackend()).createSession(addModel(), { device: 'cpu' });
    const wasm = await (await webBackend()).createSession(addModel(), { device: 'wasm' });
    expect([cpu.capabilities.promptAttention, wasm.capabilities.promptAttention]).toEqual([true, false]);
    await Promise.all([cpu.dispose(), wasm.dispose()]);
  });
});

describe('probe model', () => {
  it('the stored probe bytes are y = x + x on float32 [2]', async () => {
    const { PROBE_MODEL_BASE64 } = await import('../src/backends/ort.js');
    const m = decodeModel(Uint8Array.from(Buffer.from(PROBE_MODEL_BASE64, 'base64')));
    expect(m.graph.node.map((n) => [n.op_type, n.input])).toEqual([['Add', ['x', 'x']], ['Identity', ['Add_0']]]);
    expect(m.graph.input.map((v) => v.name)).toEqual(['x']);
    expect(m.graph.output.map((v) => v.name)).toEqual(['y']);
  });
});

describe("onnxruntime-node's WebGPU probe", () => {
  it("condenses Dawn's native lines into one reason", async () => {
    const { webgpuReason } = await import('../src/backends/node-webgpu.js');
    const message =
      "/onnxruntime_src/onnxruntime/core/providers/webgpu/webgpu_context.cc:101 onnxruntime::webgpu::WebGpuContext::Initialize(...)::<lambda()> adapter_result.status == wgpu::RequestAdapterStatus::Success was false. Failed to get a WebGPU adapter: No supported adapters";
    const stderr =
      'error: XDG_RUNTIME_DIR is invalid or not set in the environment.\nWarning: Vulkan shaderUniform*ArrayDynamicIndexing required.\n - While initializing adapter (backend=BackendType::Vulkan)\n    at InitializeImpl (/build/Release/_deps/dawn-src/src/dawn/native/vulkan/PhysicalDeviceVk.cpp:253)\n\n';
    expect(webgpuReason(message, stderr)).toBe('Dawn found no usable GPU adapter: No supported adapters (adapters refused: Vulkan shaderUniform*ArrayDynamicIndexing required)');
    expect(webgpuReason('something else\nat x', '')).toBe('something else');
  });

  it('answers in one line, whatever the machine has', async () => {
    const webgpu = (await (await nodeBackend()).probe()).find((d) => d.device === 'webgpu');
    if (!webgpu?.available) expect(webgpu?.reason).toMatch(/^[^\n]+$/);
  });
});
