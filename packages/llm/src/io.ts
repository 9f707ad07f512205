/** Graph I/O names of the decoder and embeddings graphs; the pipeline and LlamaModel depend on them. */
export const LLAMA_IO = {
  inputsEmbeds: 'inputs_embeds',
  inputIds: 'input_ids',
  seqlensK: 'seqlens_k',
  totalSequenceLength: 'total_sequence_length',
  positionIds: 'position_ids',
  pastBias: 'past_bias',
  causalBias: 'causal_bias',
  promptKernelMinRows: 'prompt_kernel_min_rows',
  logits: 'logits',
  pastKey: (l: number) => `past_key_values.${l}.key`,
  pastValue: (l: number) => `past_key_values.${l}.value`,
  presentKey: (l: number) => `present.${l}.key`,
  presentValue: (l: number) => `present.${l}.value`,
  newKey: (l: number) => `new_key_values.${l}.key`,
  newValue: (l: number) => `new_key_values.${l}.value`,
} as const;

/** File names of the two graphs when written to a folder (writeLlamaModel; the pipeline's converted folders use them too). */
export const LLAMA_FILES = { model: 'llm.onnx', embeddings: 'llm_embeddings.onnx' } as const;
