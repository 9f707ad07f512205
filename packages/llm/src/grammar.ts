// Structured output: JSON (any object, or what one JSON schema allows) enforced while decoding.
// xgrammar (@mlc-ai/web-xgrammar, the WebAssembly build WebLLM uses) compiles the schema against the
// tokenizer's vocabulary; before each token is sampled, the tokens that cannot continue valid output
// are masked out of the logits.
import type * as Xgrammar from '@mlc-ai/web-xgrammar';
import { errorMessage, InternalError, InvalidOptionError } from '@llava-mini/core';
import type { Tokenizer } from './tokenizer.js';

/** What the answer must be, in OpenAI's terms: free text (the default), any JSON object, or JSON a schema allows. */
export type ResponseFormat =
  | { type: 'text' }
  | { type: 'json_object' }
  | {
      type: 'json_schema';
      schema: Record<string, unknown>;
      /** Default true: properties and items the schema does not list are never generated. False: as the schema allows. */
      strict?: boolean;
    };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Throw InvalidOptionError unless `format` is a ResponseFormat (its schema is checked when it compiles). */
export function checkResponseFormat(format: unknown): asserts format is ResponseFormat {
  if (!isObject(format)) throw new InvalidOptionError(`responseFormat must be an object, got ${format === null ? 'null' : typeof format}`);
  if (format.type === 'text' || format.type === 'json_object') return;
  if (format.type !== 'json_schema') throw new InvalidOptionError(`responseFormat.type must be 'text', 'json_object' or 'json_schema', got ${JSON.stringify(format.type)}`);
  if (!isObject(format.schema)) throw new InvalidOptionError('responseFormat.schema must be a JSON schema object');
  if (format.strict !== undefined && typeof format.strict !== 'boolean') throw new InvalidOptionError('responseFormat.strict must be a boolean');
}

/** A response format the grammar engine cannot compile (an unsupported schema keyword, a bad type...). */
export class SchemaError extends InvalidOptionError {}

type Engine = typeof Xgrammar;
let engine: Promise<Engine> | undefined;
/** Lines the engine prints while a compile runs (it says there why a schema fails); elsewhere they go to the console. */
let printed: string[] | undefined;

/** Bundlers leave a computed specifier alone, so the web build does not pull Node's modules or the engine in. */
const load = (specifier: string) => import(/* @vite-ignore */ specifier);

/** How a browser gets the engine: from the entry that bundles it (see provideGrammarEngine). */
let browserEngine: (() => Promise<unknown>) | undefined;

/**
 * Hand the browser the engine's module: an entry made for browsers bundles its own build of the
 * package (its UMD file names Node's 'module' and 'url', which a browser bundler cannot resolve) and
 * gives it here as a lazy import, so its 1 MiB loads only with the first structured answer.
 */
export function provideGrammarEngine(loader: () => Promise<unknown>): void {
  browserEngine = loader;
}

/** The engine's API out of a module as a bundler hands it over: the namespace, its default, or (a UMD run as ESM) the global it set. */
function engineOf(module: unknown): Engine {
  const has = (m: unknown): m is Engine => typeof (m as Partial<Engine> | undefined)?.GrammarCompiler === 'function';
  const found = [module, (module as { default?: unknown } | undefined)?.default, (globalThis as { xgrammar?: unknown }).xgrammar].find(has);
  if (!found) throw new InternalError('the grammar engine module has no GrammarCompiler');
  return found;
}

/**
 * The engine's module. Its package is a UMD bundle marked "type": "module": Node would run it as ESM,
 * where its Node branch (require, __filename) is missing, so in Node it runs as the CommonJS it is,
 * its one dynamic import (of 'module', for createRequire) served by the require it is given.
 */
async function engineModule(): Promise<Engine> {
  const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
  if (!node) return engineOf(await (browserEngine ?? (() => load('@mlc-ai/web-xgrammar')))());
  const [{ createRequire }, fs, path] = await Promise.all([load('node:module'), load('node:fs'), load('node:path')]);
  // The CJS build has __filename (and no import.meta), the ESM build import.meta.url.
  const require = createRequire(typeof __filename === 'string' ? __filename : import.meta.url);
  const file: string = require.resolve('@mlc-ai/web-xgrammar');
  const code = (fs.readFileSync(file, 'utf8') as string).replace("await import('module')", "require('module')");
  const module = { exports: {} as Engine };
  new Function('exports', 'module', 'require', '__filename', '__dirname', code)(module.exports, module, createRequire(file), file, path.dirname(file));
  return module.exports;
}

/** The engine, loaded and started once; its error printer (bound to console.error as it starts) feeds `printed` while a compile runs. */
function loadEngine(): Promise<Engine> {
  engine ??= (async () => {
    const xg = await engineModule();
    const print = console.error;
    console.error = (...a: unknown[]) => (printed ? void printed.push(a.map(String).join(' ')) : print(...a));
    try {
      await xg.Testings._jsonSchemaToEBNF('{"type": "object"}'); // starts the WebAssembly module
    } finally {
      console.error = print;
    }
    return xg;
  })();
  engine.catch(() => (engine = undefined)); // a failed load may be retried
  return engine;
}

/** One tokenizer's grammar compiler, and the grammars it compiled (most recently used last). */
interface TokenizerGrammars {
  compiler: Promise<Xgrammar.GrammarCompiler>;
  compiled: Map<string, Promise<Xgrammar.CompiledGrammar>>;
  /**
   * Tokens with a control character (a byte below 0x20): compact JSON has none (a newline in a string
   * is written \n), but the engine lets them into strings, where JSON.parse refuses them.
   */
  controls: number[];
}
const byTokenizer = new WeakMap<Tokenizer, TokenizerGrammars>();
/** Compiled grammars kept per tokenizer (a schema compiles once while it stays among them). */
const KEPT_GRAMMARS = 32;

function grammarsOf(tokenizer: Tokenizer): TokenizerGrammars {
  let entry = byTokenizer.get(tokenizer);
  if (!entry) {
    // Read once: the tokenizer counts its vocabulary anew on each read (128256 entries for Llama-3).
    const size = tokenizer.vocabSize;
    const compiler = (async () => {
      const xg = await loadEngine();
      const vocab = Array.from({ length: size }, (_, id) => tokenizer.tokenString(id) ?? '');
      const info = await xg.TokenizerInfo.createTokenizerInfo(vocab, 'byte_level', false, size, [...tokenizer.stopIds]);
      // Its own cache off: compiled grammars are kept below, and a compile that aborted would leave its
      // entry there unfinished (the same schema again would wait forever).
      return xg.GrammarCompiler.createGrammarCompiler(info, false);
    })();
    const controls: number[] = [];
    for (let id = 0; id < size; id++) if (tokenizer.tokenBytes(id).some((b) => b < 0x20)) controls.push(id);
    entry = { compiler, compiled: new Map(), controls };
    byTokenizer.set(tokenizer, entry);
  }
  return entry;
}

/**
 * Run a compile on the engine, turning its abort (it stops with "Aborted()" after printing the
 * reason as a [FATAL] line) into an InvalidOptionError that says the reason.
 */
async function compiling<T>(what: string, job: () => Promise<T>): Promise<T> {
  const lines: string[] = [];
  printed = lines;
  try {
    return await job();
  } catch (err) {
    const reason = lines.map((l) => l.replace(/^\[FATAL\] \S+: /, '')).find((l) => !l.startsWith('Aborted')) ?? errorMessage(err);
    throw new SchemaError(`${what} cannot be compiled into a grammar: ${reason}`, { cause: err });
  } finally {
    printed = undefined;
  }
}

/** The grammar of `format` for `tokenizer`'s vocabulary, compiled once per tokenizer and schema. */
export function compileFormat(tokenizer: Tokenizer, format: Exclude<ResponseFormat, { type: 'text' }>): Promise<Grammar> {
  const { compiler, compiled, controls } = grammarsOf(tokenizer);
  const strict = format.type === 'json_schema' ? format.strict !== false : true;
  const key = format.type === 'json_schema' ? `${strict}:${JSON.stringify(format.schema)}` : 'json_object';
  let grammar = compiled.get(key);
  if (grammar) {
    compiled.delete(key);
  } else {
    grammar = (async () => {
      const c = await compiler;
      // Compact JSON on one line, no whitespace between elements: a model cannot spend its tokens on
      // blanks (the demo model, taught to answer after a blank line, would fill them with newlines).
      if (format.type === 'json_object') return compiling('json_object', () => c.compileGrammar(JSON_OBJECT));
      return compiling('the JSON schema', () => c.compileJSONSchema(JSON.stringify(format.schema), false, -1, [',', ':'], strict));
    })();
    grammar.catch(() => {}); // kept: the same schema fails the same way, without asking the engine again
  }
  compiled.set(key, grammar);
  if (compiled.size > KEPT_GRAMMARS) compiled.delete(compiled.keys().next().value as string);
  return grammar.then((g) => new Grammar(g, controls));
}

/** Any JSON object (json_object mode), compact as the schemas' JSON: JSON's grammar with an object at the root. */
const JSON_OBJECT = String.raw`
root ::= object
value ::= object | array | string | number | ("true" | "false" | "null")
object ::= "{" ( string ":" value ( "," string ":" value )* )? "}"
array ::= "[" ( value ( "," value )* )? "]"
string ::= "\"" ( [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] ) )* "\""
number ::= "-"? ( "0" | [1-9] [0-9]* ) ( "." [0-9]+ )? ( [eE] [-+]? [0-9]+ )?
`;

/** A compiled format; each generation follows it with a matcher of its own. */
export class Grammar {
  constructor(
    private readonly compiled: Xgrammar.CompiledGrammar,
    private readonly controls: readonly number[],
  ) {}

  async matcher(): Promise<GrammarMatcher> {
    const xg = await loadEngine();
    return new GrammarMatcher(await xg.GrammarMatcher.createGrammarMatcher(this.compiled), this.controls);
  }
}

/** Where one generation is in the grammar: which tokens may come next. */
export class GrammarMatcher {
  /** The next token's bitmask, computed after accept() while the decoder runs that token's step. */
  private next: Promise<Int32Array | undefined> | undefined;
  private disposed = false;

  constructor(
    private readonly matcher: Xgrammar.GrammarMatcher,
    private readonly controls: readonly number[],
  ) {}

  /**
   * Set every logit the grammar does not allow next (or that has a control character) to -Infinity,
   * except `header`'s id: the next id of an assistant header the model may write first, which it
   * must finish once `started` (its ids would be text otherwise).
   */
  async mask(logits: Float32Array, header?: { next: number; started: boolean }): Promise<void> {
    const alsoAllow = header?.next;
    const keep = alsoAllow === undefined ? Number.NaN : logits[alsoAllow];
    if (header?.started) {
      logits.fill(-Infinity);
      logits[header.next] = keep;
      return;
    }
    const ahead = this.next;
    this.next = undefined;
    const bits = (await ahead) ?? (await this.matcher.getNextTokenBitmask());
    // A word at a time: inside a string nearly every word allows all 32 of its tokens, between
    // fields nearly every word allows none. Ids past the engine's vocabulary (a padded row) are masked.
    const n = logits.length;
    for (let w = 0, base = 0; base < n; w++, base += 32) {
      const word = bits[w] ?? 0;
      if (word === -1) continue;
      const end = Math.min(base + 32, n);
      if (word === 0) logits.fill(-Infinity, base, end);
      else for (let i = base; i < end; i++) if (!((word >>> (i - base)) & 1)) logits[i] = -Infinity;
    }
    for (const id of this.controls) if (id < logits.length) logits[id] = -Infinity;
    if (alsoAllow !== undefined) logits[alsoAllow] = keep;
  }

  /** Move past a generated token (one the mask allowed). */
  accept(id: number): void {
    if (!this.matcher.acceptToken(id)) throw new InternalError(`the grammar refused token ${id}, which its own mask allowed`);
    // The next mask depends only on the tokens accepted: it is worked out in a later task, which
    // runs while the decoder (onnxruntime's own threads, or a worker) computes the next logits,
    // not after them. A failure there (the matcher disposed meanwhile) leaves it to mask().
    this.next = new Promise((resolve) => setTimeout(resolve, 0))
      .then(() => (this.disposed ? undefined : this.matcher.getNextTokenBitmask()))
      .catch(() => undefined);
  }

  dispose(): void {
    this.disposed = true;
    this.matcher.dispose();
  }
}
