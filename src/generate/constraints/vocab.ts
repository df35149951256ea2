// The vocabulary as raw bytes, computed once per tokenizer, and a byte trie over it laid out in preorder arrays so a
// mask walk can skip a dead subtree with one jump. Bytes (not strings) because byte-level BPE and byte-fallback
// tokens can be partial UTF-8 sequences; the automaton checks UTF-8 validity across token boundaries.
import type { TextTokenizer } from '../../tokenize/types.js';

/** GPT-2's byte <-> printable-character table (the ByteLevel pre-tokenizer/decoder of Hugging Face tokenizers):
 * bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for themselves, the other 68 bytes map to U+0100 upwards in order. */
function byteLevelDecodeTable(): Map<string, number> {
  const m = new Map<string, number>();
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    m.set(String.fromCodePoint(printable ? b : 256 + extra++), b);
  }
  return m;
}

export type VocabScheme = 'byte-level' | 'sentencepiece' | 'decode';

const enc = new TextEncoder();

/** Which token-string convention the vocabulary uses, from the vocabulary itself (never from the model name). */
export function detectScheme(tok: TextTokenizer): VocabScheme {
  let gpt = 0,
    sp = 0;
  const n = Math.min(tok.vocabSize, 60000);
  for (let id = 0; id < n; id += 7) {
    const t = tok.idToToken(id);
    if (t === undefined) continue;
    if (t.startsWith('\u0120')) gpt++; // "Ġ" = byte-level space
    if (t.startsWith('\u2581')) sp++; // "▁" = sentencepiece space
  }
  if (gpt === 0 && sp === 0) return 'decode';
  return gpt >= sp ? 'byte-level' : 'sentencepiece';
}

/**
 * Raw bytes of every token id (null for special tokens and ids without a token). Byte-level: map each character back
 * through the GPT-2 table. Sentencepiece: "▁" is a space and "<0xNN>" is byte NN (byte fallback). Otherwise: the
 * UTF-8 of decode([id]).
 */
export function tokenBytes(tok: TextTokenizer, scheme: VocabScheme = detectScheme(tok)): Array<Uint8Array | null> {
  const table = scheme === 'byte-level' ? byteLevelDecodeTable() : undefined;
  const out: Array<Uint8Array | null> = new Array(tok.vocabSize).fill(null);
  for (let id = 0; id < tok.vocabSize; id++) {
    if (tok.isSpecial(id)) continue;
    const t = tok.idToToken(id);
    if (t === undefined || t === '') continue;
    let bytes: Uint8Array | null = null;
    if (table) {
      const arr: number[] = [];
      for (const ch of t) {
        const b = table.get(ch);
        if (b === undefined) {
          arr.length = 0;
          break;
        }
        arr.push(b);
      }
      if (arr.length) bytes = Uint8Array.from(arr);
    } else if (scheme === 'sentencepiece') {
      const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(t);
      bytes = m ? Uint8Array.of(parseInt(m[1]!, 16)) : enc.encode(t.replace(/\u2581/g, ' '));
    }
    // added (non-special) tokens are stored as plain text in every scheme
    if (!bytes) {
      const d = tok.decode([id], { skipSpecialTokens: false });
      bytes = d ? enc.encode(d) : null;
    }
    if (bytes && bytes.length) out[id] = bytes;
  }
  return out;
}

/** Byte trie over token byte strings, in preorder: node i's subtree is [i, end[i]). Node 0 is the root. */
export class TokenTrie {
  readonly byte: Uint8Array;
  readonly depth: Uint16Array;
  readonly end: Int32Array;
  /** token ids ending at node i: ids[idStart[i] .. idStart[i+1]) */
  readonly idStart: Int32Array;
  readonly ids: Int32Array;
  readonly maxDepth: number;
  readonly tokens: number;

  constructor(bytes: Array<Uint8Array | null>) {
    // build with per-node child maps, then flatten in preorder with children sorted by byte
    interface N {
      kids: Map<number, N>;
      ids: number[];
    }
    const root: N = { kids: new Map(), ids: [] };
    let count = 1,
      tokens = 0,
      maxDepth = 0;
    bytes.forEach((bs, id) => {
      if (!bs) return;
      tokens++;
      maxDepth = Math.max(maxDepth, bs.length);
      let n = root;
      for (const b of bs) {
        let k = n.kids.get(b);
        if (!k) {
          k = { kids: new Map(), ids: [] };
          n.kids.set(b, k);
          count++;
        }
        n = k;
      }
      n.ids.push(id);
    });
    this.byte = new Uint8Array(count);
    this.depth = new Uint16Array(count);
    this.end = new Int32Array(count);
    this.idStart = new Int32Array(count + 1);
    this.ids = new Int32Array(tokens);
    this.maxDepth = maxDepth;
    this.tokens = tokens;
    let i = 0,
      t = 0;
    // iterative preorder: a stack of [node, byte, depth, index-or-(-1 before visit)]
    const stack: Array<{ n: N; b: number; d: number; at: number }> = [{ n: root, b: 0, d: 0, at: -1 }];
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      if (top.at >= 0) {
        this.end[top.at] = i;
        stack.pop();
        continue;
      }
      top.at = i;
      this.byte[i] = top.b;
      this.depth[i] = top.d;
      this.idStart[i] = t;
      for (const id of top.n.ids) this.ids[t++] = id;
      i++;
      const kids = [...top.n.kids.entries()].sort((a, b) => b[0] - a[0]); // reversed: smallest byte popped first
      for (const [b, n] of kids) stack.push({ n, b, d: top.d + 1, at: -1 });
    }
    this.idStart[count] = t;
  }

  get nodes(): number {
    return this.byte.length;
  }
}
