// Token-level constraint for JSON-schema grammars (the JSON automaton of json.ts over a vocabulary's byte trie), with
// the Constraint interface generate() sessions use. Masks are computed by walking the token trie once per automaton
// state and cached per state (the automaton and the cache live as long as the constraint, which is cached per
// (schema, vocabulary) in index.ts), so a state that recurs — every structural position of every decode — costs one
// copy of its mask. With a token budget, a token is allowed only if the answer can still be finished in the tokens
// left (one token per missing byte at worst, plus EOS).
import { AutomatonConstraint, type ConstraintVocab, type MaskResult } from './mask.js';
import { JsonAutomaton } from './json.js';

/** Per token: how many string characters it writes when read from inside a JSON string (an escape is one character,
 * a UTF-8 sequence one, continuation bytes none), up to its first unescaped quote; the sorted distinct counts. */
function stringCharCounts(bytes: Array<Uint8Array | null>): Int32Array {
  const seen = new Set<number>([0]);
  for (const bs of bytes) {
    if (!bs) continue;
    let n = 0,
      esc = 0;
    for (const b of bs) {
      if (esc > 0) {
        if (esc === 1 && b === 0x75) esc = 4;
        else esc--;
        continue;
      }
      if (b === 0x22) break;
      if (b === 0x5c) {
        n++;
        esc = 1;
        continue;
      }
      if (b < 0x80 || b >= 0xc0) n++;
    }
    seen.add(n);
  }
  return Int32Array.from([...seen].sort((a, b) => a - b));
}

interface CachedMask {
  allowed: Uint8Array;
  count: number;
  maxAfter: number;
}

export class SchemaConstraint extends AutomatonConstraint<JsonAutomaton> {
  private readonly cache = new Map<string, CachedMask>();
  /** sorted distinct counts of the string characters a token writes from inside a string (before any closing quote) */
  private readonly charCounts: Int32Array;
  private readonly canon = (room: number): number => {
    const c = this.charCounts;
    let lo = 0,
      hi = c.length - 1,
      best = 0;
    while (lo <= hi) {
      const m = (lo + hi) >> 1;
      if (c[m]! <= room) {
        best = c[m]!;
        lo = m + 1;
      } else hi = m - 1;
    }
    return best;
  };
  private cacheBytes = 0;

  constructor(
    vocab: ConstraintVocab,
    automaton: JsonAutomaton,
    readonly maxCacheBytes = 256 * 2 ** 20,
  ) {
    super(vocab, automaton);
    this.charCounts = stringCharCounts(vocab.bytes);
  }

  /** Walk the trie from `state`; tokens whose end state needs more than `slack` bytes to finish are left out. */
  private walk(state: number, slack: number, allowed: Uint8Array): CachedMask {
    const a = this.automaton;
    const t = this.vocab.trie;
    const st = this.stack;
    st[0] = state;
    const n = t.nodes,
      depth = t.depth,
      byte = t.byte,
      end = t.end,
      idStart = t.idStart,
      ids = t.ids;
    let count = 0,
      maxAfter = 0;
    let i = 1;
    while (i < n) {
      const s = a.step(st[depth[i]! - 1]!, byte[i]!);
      if (s < 0) {
        i = end[i]!;
        continue;
      }
      st[depth[i]!] = s;
      const from = idStart[i]!,
        to = idStart[i + 1]!;
      if (from < to) {
        const m = a.minToFinish(s);
        if (m <= slack) {
          if (m > maxAfter) maxAfter = m;
          for (let k = from; k < to; k++) {
            allowed[ids[k]!] = 1;
            count++;
          }
        }
      }
      i++;
    }
    return { allowed, count, maxAfter };
  }

  mask(state: number, remaining = Infinity, out?: Uint8Array, opts: { fullWalk?: boolean } = {}): MaskResult {
    const allowed = out ?? new Uint8Array(this.vocab.vocabSize);
    const eos = this.automaton.isComplete(state) && remaining >= 1;
    const slack = remaining - 2;
    if (remaining < 2 || state < 0) {
      allowed.fill(0);
      return { allowed, count: 0, eos };
    }
    if (opts.fullWalk) {
      allowed.fill(0);
      return { allowed, count: this.walk(state, slack, allowed).count, eos };
    }
    const key = this.automaton.maskKey(state, this.canon);
    let c = this.cache.get(key);
    if (c) this.cacheStats.hits++;
    else {
      this.cacheStats.misses++;
      c = this.walk(state, Infinity, new Uint8Array(this.vocab.vocabSize));
      if (this.cacheBytes + c.allowed.length > this.maxCacheBytes) {
        this.cache.clear();
        this.cacheBytes = 0;
      }
      this.cache.set(key, c);
      this.cacheBytes += c.allowed.length;
    }
    if (c.maxAfter <= slack) {
      allowed.set(c.allowed);
      return { allowed, count: c.count, eos };
    }
    // near the end of the budget: only tokens after which the answer can still be finished
    allowed.fill(0);
    const r = this.walk(state, slack, allowed);
    return { allowed, count: r.count, eos };
  }
}
