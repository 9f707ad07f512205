import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointMismatchError, InvalidOptionError, PromptTooLongError, tensor, UnsupportedConfigError } from '@llava-mini/core';
import { Checkpoint } from '@llava-mini/core/node';
import { testBackends } from '@llava-mini/core/testing';
import { writeTinyCheckpoint } from '@llava-mini/tiny';
import { buildEmbeddingsGraph, buildLlamaGraph, generate, readLlamaConfig, Tokenizer } from '../src/index.js';
import { openModel, tempDir, tinyLlm } from './helpers.js';

const [{ backend, device }] = await testBackends();
const tiny = await tinyLlm({ seed: 51 });

describe('typed errors before any model work', () => {
  it('PromptTooLongError when the prompt does not fit the context window left', async () => {
    const model = await openModel(tiny, backend, device, {}, { maxSequence: 16 });
    try {
      const ids = Array.from({ length: 17 }, (_, i) => i);
      const seq = model.sequence();
      expect(() => generate(seq, ids)).toThrow(PromptTooLongError);
      await expect(seq.prefill(tensor('float32', [1, 17, tiny.config.hiddenSize]))).rejects.toMatchObject({ code: 'PROMPT_TOO_LONG' });
      expect(model.profile.runs).toBe(0);
      await generate(seq, ids.slice(0, 12), { maxNewTokens: 1 }).done(); // 12 positions used, last token not fed
      expect(() => generate(seq, ids.slice(0, 5))).toThrow(PromptTooLongError); // 12 + 5 > 16
      expect(() => generate(model.sequence(), ids.slice(0, 5))).not.toThrow(); // another sequence has its own room
    } finally {
      await model.dispose();
    }
  });

  it('InvalidOptionError for sampling options, token ids and embeddings out of range', async () => {
    const model = await openModel(tiny, backend, device);
    try {
      const bad = [{ temperature: -1 }, { temperature: Number.NaN }, { topK: 1.5 }, { topP: 0 }, { topP: 1.5 }, { repetitionPenalty: 0 }, { seed: -3 }, { maxNewTokens: 0 }, { stopIds: [-1] }, { stopStrings: ['x'] }, { logprobs: true, topLogprobs: 21 }, { topLogprobs: 2 }];
      const seq = model.sequence();
      for (const o of bad) expect(() => generate(seq, [1, 2, 3], o), JSON.stringify(o)).toThrow(InvalidOptionError);
      expect(() => generate(seq, [])).toThrow(InvalidOptionError);
      await expect(model.embed([1, -200])).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(model.embed([tiny.config.vocabSize])).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(seq.prefill(tensor('float32', [1, 2, tiny.config.hiddenSize + 1]))).rejects.toBeInstanceOf(InvalidOptionError);
      await expect(seq.prefill(tensor('float16', [1, 2, tiny.config.hiddenSize]))).rejects.toBeInstanceOf(InvalidOptionError);
      expect(model.profile.runs).toBe(0);
    } finally {
      await model.dispose();
    }
  });

  it('CheckpointMismatchError when tensor shapes disagree with config.json', async () => {
    const wider = readLlamaConfig({ ...tiny.json, hidden_size: 128, head_dim: 32 });
    expect(() => buildLlamaGraph(tiny.src, wider)).toThrow(CheckpointMismatchError);
    expect(() => buildEmbeddingsGraph(tiny.src, { ...tiny.config, vocabSize: tiny.config.vocabSize + 1 })).toThrow(CheckpointMismatchError);
    // Untied config over a checkpoint written without lm_head.weight.
    const dir = tempDir();
    await writeTinyCheckpoint(dir, { includeVision: false, tieWordEmbeddings: true, numHiddenLayers: 1 });
    const json = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
    expect(() => buildLlamaGraph(Checkpoint.open(dir), readLlamaConfig({ ...json, tie_word_embeddings: false }), { maxPositions: 16 })).toThrow(/lm_head\.weight/);
  });

  it('UnsupportedConfigError for an unknown RoPE scaling type or a missing chat template', () => {
    for (const rope_scaling of [{ rope_type: 'yarn', factor: 4 }, { type: 'dynamic', factor: 2 }]) {
      expect(() => readLlamaConfig({ ...tiny.json, rope_scaling })).toThrow(UnsupportedConfigError);
    }
    expect(() => readLlamaConfig({ ...tiny.json, rope_scaling: { rope_type: 'llama3', factor: 8 } })).toThrow(UnsupportedConfigError);
    // head_dim 8: onnxruntime's rotary attention needs a multiple of 16.
    expect(() => buildLlamaGraph(tiny.src, readLlamaConfig({ ...tiny.json, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 8 }))).toThrow(UnsupportedConfigError);
    const dir = tiny.dir;
    const noTemplate = Tokenizer.fromFiles({
      tokenizer: fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8'),
      tokenizerConfig: { ...JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')), chat_template: undefined },
    });
    expect(() => noTemplate.applyChatTemplate([{ role: 'user', content: 'hi' }])).toThrow(UnsupportedConfigError);
  });
});
