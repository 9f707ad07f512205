/**
 * JSON the way transformers writes its config files: Python's `json.dumps(obj, indent=2,
 * sort_keys=True) + "\n"`. Matching it byte for byte matters because the released files' sizes are
 * part of the evidence the spec reasons from, and because readers then see exactly the number
 * spellings they will meet in real checkpoints (`1e-05`, `500000.0`, `0.0`).
 *
 * JavaScript has one number type, so whether a value prints as a Python float or int is decided by
 * its key: keys in `floatKeys` print as floats (Python `repr`), all others as JSON numbers.
 */

export interface PyJsonOptions {
  /** Keys (at any depth) whose numeric values are Python floats. */
  floatKeys?: ReadonlySet<string>;
  /** Python's `ensure_ascii`: transformers uses true for configs, false for tokenizer_config.json. */
  ensureAscii?: boolean;
}

/** Python's `repr(float)`: shortest round-trip digits, exponent form outside [1e-4, 1e16). */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, expText] = x.toExponential().split('e');
  const exp = Number(expText);
  if (exp < -4 || exp >= 16) {
    const sign = exp < 0 ? '-' : '+';
    return `${mantissa}e${sign}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  // Inside this range JavaScript already prints positional digits; Python adds ".0" to integral values.
  const s = String(x);
  return s.includes('.') ? s : `${s}.0`;
}

function pyString(s: string, ensureAscii: boolean): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\b') out += '\\b';
    else if (ch === '\f') out += '\\f';
    else if (c < 0x20 || (ensureAscii && c > 0x7e)) {
      // Python escapes astral characters as a surrogate pair, which iterating UTF-16 units gives us.
      for (let i = 0; i < ch.length; i++) out += `\\u${ch.charCodeAt(i).toString(16).padStart(4, '0')}`;
    } else out += ch;
  }
  return `${out}"`;
}

function pyValue(value: unknown, key: string | undefined, indent: string, opts: Required<PyJsonOptions>): string {
  if (value === null || value === undefined) return 'null';
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number') {
    if (key !== undefined && opts.floatKeys.has(key)) return pyFloat(value);
    if (!Number.isFinite(value)) return pyFloat(value);
    return Number.isInteger(value) ? String(value) : pyFloat(value);
  }
  if (typeof value === 'string') return pyString(value, opts.ensureAscii);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    // Array elements inherit the key so `eos_token_id: [..]` style lists of floats format like their key.
    return `[\n${value.map((v) => inner + pyValue(v, key, inner, opts)).join(',\n')}\n${indent}]`;
  }
  if (typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (entries.length === 0) return '{}';
    return `{\n${entries.map(([k, v]) => `${inner}${pyString(k, opts.ensureAscii)}: ${pyValue(v, k, inner, opts)}`).join(',\n')}\n${indent}}`;
  }
  throw new TypeError(`cannot serialize a ${typeof value} as JSON`);
}

/** `json.dumps(value, indent=2, sort_keys=True) + "\n"`. Undefined object members are left out. */
export function pyJson(value: unknown, options: PyJsonOptions = {}): string {
  const opts: Required<PyJsonOptions> = { floatKeys: options.floatKeys ?? new Set(), ensureAscii: options.ensureAscii ?? true };
  return `${pyValue(value, undefined, '', opts)}\n`;
}
