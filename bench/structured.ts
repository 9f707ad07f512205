/**
 * Answers programs can use (issue 24), on the LLM bench's mid model (398 M parameters, the real
 * 128256-token Llama-3 vocabulary, seeded random weights; onnxruntime-node CPU):
 *
 *   npm run bench -- structured              q8 and fp32, 5 rounds
 *   npm run bench -- structured --quick      q8, 3 rounds
 *   options: --formats=q8,fp32  --rounds=N  --record (write bench/RESULTS.md's "Structured output" section)
 *
 * 1. Decode tokens/s under a JSON schema against free decoding, the same prompt and budget, rounds
 *    alternating: a schema of enums (the demo's whole-scene schema) and one of free strings (where
 *    the grammar allows most of the vocabulary, the engine's costliest masks).
 * 2. The grammar's compile time for a small and a large schema (uncached: each round's schema is
 *    new), the engine's start with the vocabulary's tokenizer info (once per tokenizer), and a cached
 *    schema; the per-token mask time, replaying the strings answer's tokens through a matcher: the
 *    engine's bitmask and the whole mask (bitmask applied to a logits row).
 * 3. n = 4 answers from one prefill against four separate requests (each its own prompt run), one
 *    after another and all at once: time until the last token of the last answer.
 *
 * The random-weight model writes nonsense inside the JSON; what is measured is the cost of the
 * constraint, which does not depend on what the weights say.
 */
import { compileFormat, generate, generateChoices, type GenerationResult, LlamaModel, loadTokenizer, type ResponseFormat, type Sequence, type Tokenizer } from '@llava-mini/llm/node';
import { benchCommand, cpuTargets, flag, fmt, listOption, LoadMeter, log, machine, median, now, option, promptIds, RESULTS, replaceMarked, table } from './lib/common.js';
import { type FormatName, llmGraphs, midCheckpoint } from './lib/llm-model.js';

const QUICK = flag('quick');
const FORMATS = listOption('formats', QUICK ? ['q8'] : ['q8', 'fp32']) as FormatName[];
const ROUNDS = Number(option('rounds') ?? (QUICK ? 3 : 5));
const PROMPT = 64;
const DECODE = 48;
const CHOICES = 4;
const CHOICE_TOKENS = 32;
const MAX_SEQUENCE = 512;
const meter = new LoadMeter();

const COLORS = ['red', 'green', 'blue', 'yellow', 'purple', 'orange'];
/** One field: what a colour question asks for. */
const SMALL = { type: 'object', properties: { answer: { enum: COLORS } }, required: ['answer'] };
/** A whole-scene schema like examples/node-json/scene.schema.json (wider bounds): enums, a bounded array of objects, a bounded integer. */
const SCENE = {
  type: 'object',
  properties: {
    shapes: {
      type: 'array',
      minItems: 1,
      maxItems: 6,
      items: {
        type: 'object',
        properties: { color: { enum: COLORS }, shape: { enum: ['circle', 'square', 'triangle'] }, side: { enum: ['left', 'right'] } },
        required: ['color', 'shape', 'side'],
      },
    },
    count: { type: 'integer', minimum: 0, maximum: 9 },
  },
  required: ['shapes', 'count'],
};
/** Free strings the answer must fill (the grammar allows most tokens inside them). */
const STRINGS = {
  type: 'object',
  properties: { notes: { type: 'array', items: { type: 'string', minLength: 8, maxLength: 40 }, minItems: 8, maxItems: 8 } },
  required: ['notes'],
  additionalProperties: false,
};
/** A large schema: a 24-field record with nested objects, arrays of objects, ranges, enums and optional fields. */
function largeSchema(): Record<string, unknown> {
  const properties: Record<string, unknown> = {};
  for (let i = 0; i < 6; i++) {
    properties[`name_${i}`] = { type: 'string', maxLength: 32 };
    properties[`count_${i}`] = { type: 'integer', minimum: 0, maximum: 10 ** (i + 1) };
    properties[`kind_${i}`] = { enum: Array.from({ length: 12 }, (_, j) => `kind-${i}-${j}`) };
    properties[`items_${i}`] = {
      type: 'array',
      maxItems: 5,
      items: {
        type: 'object',
        properties: { id: { type: 'integer' }, label: { type: 'string' }, price: { type: 'number' }, tags: { type: 'array', items: { type: 'string' } }, ok: { type: 'boolean' } },
        required: ['id', 'label'],
      },
    };
  }
  properties.address = {
    type: 'object',
    properties: { street: { type: 'string' }, city: { type: 'string' }, zip: { type: 'string', pattern: '^[0-9]{5}$' }, geo: { type: 'object', properties: { lat: { type: 'number' }, lon: { type: 'number' } }, required: ['lat', 'lon'] } },
    required: ['street', 'city'],
  };
  return { type: 'object', properties, required: Object.keys(properties).filter((_, i) => i % 2 === 0) };
}
const LARGE = largeSchema();

const format = (schema: Record<string, unknown>) => ({ type: 'json_schema' as const, schema });
/** A schema the grammar cache has not seen: the same grammar under another description. */
const fresh = (schema: Record<string, unknown>, tag: string) => ({ ...schema, description: tag });

interface DecodeRow {
  format: string;
  free: number[];
  scene: number[];
  strings: number[];
  sceneTokens: number[];
  stringsTokens: number[];
  /** CPU ms this process (all its threads) spent per answer token, prefill included: less swayed by other users of the machine than wall time. */
  cpu: Record<'free' | 'scene' | 'strings', number[]>;
}

async function run(seq: Sequence, prompt: number[], tokenizer: Tokenizer, responseFormat?: ResponseFormat, maxNewTokens = DECODE): Promise<GenerationResult> {
  try {
    // Free decoding ignores stop ids so it runs the whole budget; under a schema the grammar ends the answer.
    return await generate(seq, prompt, { maxNewTokens, tokenizer, responseFormat, ...(responseFormat ? {} : { stopIds: [] }) }).done();
  } finally {
    seq.dispose();
  }
}

async function decodeSection(model: LlamaModel, tokenizer: Tokenizer, name: string, prompt: number[]): Promise<{ row: DecodeRow; stringsAnswer: GenerationResult }> {
  const row: DecodeRow = { format: name, free: [], scene: [], strings: [], sceneTokens: [], stringsTokens: [], cpu: { free: [], scene: [], strings: [] } };
  let stringsAnswer: GenerationResult | undefined;
  // Warm-up: the first steps after loading run slower; the schemas compile here (cached afterwards).
  await run(model.sequence(), prompt, tokenizer, undefined, 8);
  await run(model.sequence(), prompt, tokenizer, format(SCENE), 8);
  await run(model.sequence(), prompt, tokenizer, format(STRINGS), 8);
  for (let round = 0; round < ROUNDS; round++) {
    const kinds = ['free', 'scene', 'strings'] as const;
    for (const kind of round % 2 ? [...kinds].reverse() : kinds) {
      const cpu = process.cpuUsage();
      const r = await run(model.sequence(), prompt, tokenizer, kind === 'free' ? undefined : format(kind === 'scene' ? SCENE : STRINGS));
      const used = process.cpuUsage(cpu);
      row.cpu[kind].push((used.user + used.system) / 1000 / r.ids.length);
      row[kind].push(r.stats.decodeTokensPerSecond);
      if (kind === 'scene') row.sceneTokens.push(r.ids.length);
      if (kind === 'strings') {
        row.stringsTokens.push(r.ids.length);
        stringsAnswer = r;
      }
    }
    log(`  ${name} round ${round + 1}/${ROUNDS}: free ${fmt(row.free.at(-1)!)} tok/s, scene ${fmt(row.scene.at(-1)!)}, strings ${fmt(row.strings.at(-1)!)}`);
  }
  return { row, stringsAnswer: stringsAnswer! };
}

interface Compile {
  start: number;
  small: number[];
  large: number[];
  cached: number[];
}

/** Compile times: the engine's start with this vocabulary (first call), then uncached small and large schemas, and a cached one. */
async function compileSection(tokenizer: Tokenizer): Promise<Compile> {
  const time = async (f: () => Promise<unknown>) => {
    const t = now();
    await f();
    return now() - t;
  };
  const out: Compile = { start: await time(() => compileFormat(tokenizer, format(fresh(SMALL, 'start')))), small: [], large: [], cached: [] };
  for (let round = 0; round < ROUNDS; round++) {
    out.small.push(await time(() => compileFormat(tokenizer, format(fresh(SMALL, `small ${round}`)))));
    out.large.push(await time(() => compileFormat(tokenizer, format(fresh(LARGE, `large ${round}`)))));
    out.cached.push(await time(() => compileFormat(tokenizer, format(fresh(LARGE, `large ${round}`)))));
  }
  return out;
}

interface Mask {
  tokens: number;
  bitmask: number[];
  mask: number[];
}

/** Per-token mask time: the strings answer's tokens replayed through a matcher on a logits row of the vocabulary's size. */
async function maskSection(tokenizer: Tokenizer, vocab: number, answer: GenerationResult): Promise<Mask> {
  const grammar = await compileFormat(tokenizer, format(STRINGS));
  const ids = answer.ids.slice(answer.headerTokens);
  const row = Float32Array.from({ length: vocab }, (_, i) => Math.sin(i));
  const logits = new Float32Array(vocab);
  const out: Mask = { tokens: ids.length, bitmask: [], mask: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const matcher = await grammar.matcher();
    // The engine's own matcher (private: what the mask costs before it touches the logits).
    const engine = (matcher as unknown as { matcher: { getNextTokenBitmask(): Promise<Int32Array> } }).matcher;
    for (const id of ids) {
      let t = now();
      await engine.getNextTokenBitmask();
      out.bitmask.push(now() - t);
      logits.set(row);
      t = now();
      await matcher.mask(logits);
      out.mask.push(now() - t);
      matcher.accept(id);
      // What the decoder's run gives the matcher: a turn of the event loop, where it works out the next bitmask.
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    matcher.dispose();
  }
  return out;
}

interface Choices {
  format: string;
  together: number[];
  sequential: number[];
  concurrent: number[];
  /** CPU ms of this process (all threads) for each, the same runs. */
  cpu: Record<'together' | 'sequential' | 'concurrent', number[]>;
}

/** n = 4 from one prefill against four requests, one after another and all at once: wall time to the last token. */
async function choicesSection(model: LlamaModel, tokenizer: Tokenizer, name: string, prompt: number[]): Promise<Choices> {
  const options = { maxNewTokens: CHOICE_TOKENS, tokenizer, stopIds: [] };
  const out: Choices = { format: name, together: [], sequential: [], concurrent: [], cpu: { together: [], sequential: [], concurrent: [] } };
  const together = async () => {
    const seq = model.sequence();
    const t = now();
    const results = await Promise.all(generateChoices(seq, prompt, CHOICES, options).map((g) => g.done()));
    const ms = now() - t;
    seq.dispose();
    if (new Set(results.map((r) => r.ids.join())).size !== 1) throw new Error('greedy choices differ');
    return ms;
  };
  const sequential = async () => {
    const t = now();
    for (let i = 0; i < CHOICES; i++) await run(model.sequence(), prompt, tokenizer, undefined, CHOICE_TOKENS);
    return now() - t;
  };
  const concurrent = async () => {
    const t = now();
    await Promise.all(Array.from({ length: CHOICES }, () => run(model.sequence(), prompt, tokenizer, undefined, CHOICE_TOKENS)));
    return now() - t;
  };
  await together(); // warm-up
  for (let round = 0; round < ROUNDS; round++) {
    const runs: [keyof Choices['cpu'], () => Promise<number>][] = [
      ['together', together],
      ['sequential', sequential],
      ['concurrent', concurrent],
    ];
    for (const [kind, f] of round % 2 ? runs.reverse() : runs) {
      const cpu = process.cpuUsage();
      out[kind].push(await f());
      const used = process.cpuUsage(cpu);
      out.cpu[kind].push((used.user + used.system) / 1000);
    }
    log(`  ${name} round ${round + 1}/${ROUNDS}: n=4 ${fmt(out.together.at(-1)!)} ms, 4 in turn ${fmt(out.sequential.at(-1)!)} ms, 4 at once ${fmt(out.concurrent.at(-1)!)} ms`);
  }
  return out;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<void> {
  const { dir, config } = await midCheckpoint();
  const tokenizer = loadTokenizer(dir);
  const prompt = promptIds(tokenizer, PROMPT);
  const [target] = await cpuTargets(['node']);
  log('compile times...');
  const compile = await compileSection(tokenizer);
  const decode: DecodeRow[] = [];
  const choices: Choices[] = [];
  let mask: Mask | undefined;
  for (const name of FORMATS) {
    const model = await LlamaModel.create(target.backend, llmGraphs(dir, config, name, MAX_SEQUENCE), { config, device: target.device, maxSequence: MAX_SEQUENCE });
    try {
      log(`${name}: decode with and without a schema...`);
      const d = await decodeSection(model, tokenizer, name, prompt);
      decode.push(d.row);
      mask ??= await maskSection(tokenizer, config.vocabSize, d.stringsAnswer);
      log(`${name}: n = ${CHOICES} against ${CHOICES} requests...`);
      choices.push(await choicesSection(model, tokenizer, name, prompt));
    } finally {
      await model.dispose();
    }
  }

  const md = [
    '## Structured output, logprobs and n (issue 24)',
    '',
    `\`${benchCommand('structured')}\`, ${new Date().toISOString().slice(0, 10)}, ${machine()}; ${meter.report()}.`,
    `The LLM bench's mid model (398 M parameters, width 1024, 12 layers, the real 128256-token Llama-3 vocabulary; seeded random weights), onnxruntime-node CPU, a ${PROMPT}-token prompt, greedy. Medians of ${ROUNDS} rounds, the kinds alternating within each round.`,
    '',
    `### Decode tokens/s under a JSON schema (up to ${DECODE} tokens; decode = steps after the first token, the mask included)`,
    '',
    table(
      ['weights', 'free tok/s', 'scene schema tok/s', 'scene / free', 'strings schema tok/s', 'strings / free', 'answer tokens (scene, strings)'],
      decode.map((r) => {
        const free = median(r.free);
        return [r.format, fmt(free), fmt(median(r.scene)), `${fmt((100 * median(r.scene)) / free)} %`, fmt(median(r.strings)), `${fmt((100 * median(r.strings)) / free)} %`, `${median(r.sceneTokens)}, ${median(r.stringsTokens)}`];
      }),
    ),
    '',
    `CPU ms per answer token (this process, all threads; the ${PROMPT}-token prefill included), the same runs:`,
    '',
    table(
      ['weights', 'free', 'scene schema', 'free / scene', 'strings schema', 'free / strings'],
      decode.map((r) => {
        const [free, scene, strings] = [median(r.cpu.free), median(r.cpu.scene), median(r.cpu.strings)];
        return [r.format, fmt(free), fmt(scene), `${fmt((100 * free) / scene)} %`, fmt(strings), `${fmt((100 * free) / strings)} %`];
      }),
    ),
    '',
    '### Grammar compile and mask',
    '',
    table(
      ['what', 'ms'],
      [
        ['engine start + tokenizer info of the 128256-token vocabulary + the small schema (first call, once per tokenizer)', fmt(compile.start)],
        ['small schema (one enum field), uncached', fmt(median(compile.small), 2)],
        [`large schema (${Object.keys(LARGE.properties as object).length} fields, nested objects, arrays of objects, a pattern), uncached`, fmt(median(compile.large), 2)],
        ['a schema compiled before (the cache)', fmt(median(compile.cached), 3)],
        ...(mask
          ? [
              [`per-token mask, strings schema (${mask.tokens} answer tokens x ${ROUNDS}): the engine's bitmask, median / mean (worked out while the decoder runs)`, `${fmt(median(mask.bitmask), 3)} / ${fmt(mean(mask.bitmask), 3)}`],
              ['per-token mask left between the logits and the sampler (the bitmask applied to the 128256 logits), median / mean', `${fmt(median(mask.mask), 3)} / ${fmt(mean(mask.mask), 3)}`],
            ]
          : []),
      ],
      [false, true],
    ),
    '',
    `### n = ${CHOICES} from one prefill against ${CHOICES} separate requests (${CHOICE_TOKENS} tokens each; wall time to the last token)`,
    '',
    table(
      ['weights', 'measure', `n = ${CHOICES}`, `${CHOICES} requests in turn`, 'ratio', `${CHOICES} requests at once`, 'ratio'],
      choices.flatMap((c) =>
        (['wall ms', 'CPU ms'] as const).map((measure) => {
          const of = (k: keyof Choices['cpu']) => median(measure === 'wall ms' ? c[k] : c.cpu[k]);
          const n = of('together');
          return [c.format, measure, fmt(n), fmt(of('sequential')), `${fmt(n / of('sequential'), 2)}x`, fmt(of('concurrent')), `${fmt(n / of('concurrent'), 2)}x`];
        }),
      ),
      [false, false, true, true, true, true, true],
    ),
  ].join('\n');
  console.log(`\n${md}\n`);
  if (flag('record')) replaceMarked(RESULTS, 'structured', md);
}

await main();
