// A byte-level BPE vocabulary (GPT-2's, Llama-3's) writes each byte as one printable character:
// bytes that are printable Latin-1 as themselves, the others as U+0100 onwards, in order. Reading a
// token's characters back through that table gives its bytes, also for a token that ends inside a
// multi-byte UTF-8 character (whose decoded text would be U+FFFD).
const BYTE_OF_CHAR = new Map<number, number>();
{
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    BYTE_OF_CHAR.set(printable ? b : 0x100 + shifted++, b);
  }
}

/** The bytes of a byte-level token's text; undefined if it has a character outside the table. */
export function byteLevelBytes(token: string): number[] | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < token.length; i++) {
    const b = BYTE_OF_CHAR.get(token.charCodeAt(i));
    if (b === undefined) return undefined;
    bytes.push(b);
  }
  return bytes;
}
