// Token-level constraint for JSON-schema grammars (the JSON automaton of json.ts over a vocabulary's byte trie), with
// the Constraint interface generate() sessions use. Masks are built after XGrammar's adaptive token-mask cache (Dong et
// al. 2024, "XGrammar: flexible and efficient structured generation engine for LLMs"): a state is a set of stacks, and
// for each stack's top frame the vocabulary splits once into context-independent tokens (they never pop the frame, so
// the frame alone accepts or rejects them: an id list sorted by the bytes each leaves to finish, and a bitmask) and
// context-dependent ones (their bytes pop the frame: the trie subtrees where that happens, walked from the real state
// at run time). Every string position shares the split of one unbounded string, restricted to the room left, so a few
// dozen splits serve every field, position and array slot. Splits live as long as the constraint, which index.ts
// caches per (schema, vocabulary). With a token budget, a token is allowed only if the answer can still be finished in
// the tokens left (one token per missing byte at worst, plus EOS). `fullWalk` is the reference the tests compare with:
// one walk of the whole trie from the state.
import { AutomatonConstraint, type ConstraintVocab, type MaskResult } from './mask.js';
import { JsonAutomaton } from './json.js';

/** Per token: how many string characters it writes when read from inside a JSON string (an escape is one character,
 * a UTF-8 sequence one, continuation bytes none), up to its first unescaped quote. */
function stringChars(bytes: Array<Uint8Array | null>): Int32Array {
  const out = new Int32Array(bytes.length);
  bytes.forEach((bs, id) => {
    if (!bs) return;
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
    out[id] = n;
  });
  return out;
}

/** A mask being composed: the allowed tokens, how many, and the most bytes one of them leaves to finish. */
interface Composed {
  allowed: Uint8Array;
  count: number;
  maxAfter: number;
}

/** One top frame's split of the vocabulary. */
interface FrameEntry {
  /** tokens the frame accepts on its own (they never pop it), sorted by `ciMin` */
  ciIds: Int32Array;
  /** fewest bytes the frame's own part of the stack needs to finish after each of `ciIds` */
  ciMin: Int32Array;
  /** `ciIds` as a vocabulary mask, kept when they are many (a copy is faster than setting them one by one) */
  bits?: Uint8Array;
  /** trie nodes (preorder) where some path pops the frame: their subtrees depend on the frames below */
  depRoots: Int32Array;
  /** trie nodes (preorder) where every path has just popped the frame on the node's byte: from a real state the
   * subtree continues from the frames below (`popState`), so it is walked from there, without the bytes above it */
  popRoots: Int32Array;
  /** per pop root: the string characters of the bytes above it (a string frame keeps it only within its room) */
  popChars: Int32Array;
  /** the string room this entry is restricted to (Infinity: none): only `ciIds` writing at most `room` string
   * characters count (`bits` and `count` already say so) */
  room: number;
  /** how many of `ciIds` count */
  count: number;
  /** `ciIds` by the string characters they write, most first (for restricting to a room) */
  byChars?: Int32Array;
  bytes: number;
  /** for string frames: the entry restricted to tokens writing at most `room` characters, per canonical room */
  byRoom?: Map<number, FrameEntry>;
}

export class SchemaConstraint extends AutomatonConstraint<JsonAutomaton> {
  private readonly frames = new Map<string, FrameEntry>();
  /** statistics (benchmarks): frame splits computed and the time spent on them (`cacheStats`: split lookups) */
  readonly frameStats = { frames: 0, ms: 0 };
  /** per token, the string characters it writes from inside a string (before any closing quote) */
  private readonly chars: Int32Array;
  /** their sorted distinct values */
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
  private frameBytes = 0;
  private scratchIds?: Int32Array;
  private scratchMins?: Int32Array;
  private scratchRoots?: Int32Array;
  private scratchPops?: Int32Array;

  constructor(
    vocab: ConstraintVocab,
    automaton: JsonAutomaton,
    readonly maxCacheBytes = 256 * 2 ** 20,
  ) {
    super(vocab, automaton);
    this.chars = stringChars(vocab.bytes);
    this.charCounts = Int32Array.from(new Set([0, ...this.chars])).sort();
  }

  /** Walk the trie from `state`; tokens whose end state needs more than `slack` bytes to finish are left out. */
  private walk(state: number, slack: number, allowed: Uint8Array): Composed {
    return { allowed, ...this.walkTrie(this.vocab.trie, state, slack, allowed) };
  }

  /** The vocabulary split of a top frame (see JsonAutomaton.frameSplit), restricted to the string room it has left. */
  private frameEntry(top: string): FrameEntry {
    const { key, frame, room } = this.automaton.frameSplit(top);
    let e = this.frames.get(key);
    if (e) this.cacheStats.hits++;
    else {
      this.cacheStats.misses++;
      e = this.splitFrame(key, frame);
    }
    if (room === Infinity) return e;
    const r = this.canon(room); // rooms with no token character count between them keep the same tokens
    e.byRoom ??= new Map();
    let sub = e.byRoom.get(r);
    if (!sub) {
      // the same tokens less those writing more than r characters (the longest first in `byChars`)
      const byChars = (e.byChars ??= this.sortByChars(e.ciIds));
      let cut = 0;
      while (cut < byChars.length && this.chars[byChars[cut]!]! > r) cut++;
      sub = { ...e, room: r, count: e.count - cut, byRoom: undefined, bytes: 0 };
      if (e.bits) {
        sub.bits = e.bits.slice();
        for (let k = 0; k < cut; k++) sub.bits[byChars[k]!] = 0;
        sub.bytes = sub.bits.length;
      }
      e.byRoom.set(r, sub);
      this.account(sub);
    }
    return sub;
  }

  /** `ids` sorted by the string characters they write, most first (counting sort). */
  private sortByChars(ids: Int32Array): Int32Array {
    let max = 0;
    for (const id of ids) max = Math.max(max, this.chars[id]!);
    const starts = new Int32Array(max + 2);
    for (const id of ids) starts[max - this.chars[id]! + 1]!++;
    for (let c = 1; c < starts.length; c++) starts[c]! += starts[c - 1]!;
    const out = new Int32Array(ids.length);
    for (const id of ids) out[starts[max - this.chars[id]!]!++] = id;
    return out;
  }

  private entry(
    ciIds: Int32Array,
    ciMin: Int32Array,
    roots: Pick<FrameEntry, 'depRoots' | 'popRoots' | 'popChars'>,
  ): FrameEntry {
    const { depRoots, popRoots, popChars } = roots;
    const e: FrameEntry = { ciIds, ciMin, count: ciIds.length, depRoots, popRoots, popChars, room: Infinity, bytes: 0 };
    if (ciIds.length * 32 > this.vocab.vocabSize) {
      e.bits = new Uint8Array(this.vocab.vocabSize);
      for (const id of ciIds) e.bits[id] = 1;
    }
    e.bytes = 8 * ciIds.length + 4 * (depRoots.length + 2 * popRoots.length) + (e.bits?.length ?? 0);
    return e;
  }

  private account(e: FrameEntry): void {
    this.frameBytes += e.bytes;
    if (this.frameBytes > this.maxCacheBytes / 2) {
      this.frames.clear(); // entries already handed out stay valid
      this.frameBytes = 0;
    }
  }

  /** One walk of the trie from the sentinel state of `frame`: its context-independent tokens and dependent subtrees. */
  private splitFrame(key: string, frame: string): FrameEntry {
    const a = this.automaton;
    const t0 = performance.now();
    const t = this.vocab.trie;
    const st = this.stack;
    st[0] = a.sentinelState(frame);
    const n = t.nodes,
      depth = t.depth,
      byte = t.byte,
      end = t.end,
      idStart = t.idStart,
      ids = t.ids;
    // scratch buffers (a large frame holds most of the vocabulary: no per-token allocation)
    const ci = (this.scratchIds ??= new Int32Array(t.tokens)),
      mins = (this.scratchMins ??= new Int32Array(t.tokens)),
      roots = (this.scratchRoots ??= new Int32Array(n)),
      pops = (this.scratchPops ??= new Int32Array(n));
    let nci = 0,
      nroots = 0,
      npops = 0,
      maxMin = 0;
    let i = 1;
    while (i < n) {
      const s = a.step(st[depth[i]! - 1]!, byte[i]!);
      if (s < 0) {
        i = end[i]!;
        continue;
      }
      if (a.touched(s)) {
        // some path popped the frame: every token below depends on the frames under it
        if (a.purePop(s)) pops[npops++] = i;
        else roots[nroots++] = i;
        i = end[i]!;
        continue;
      }
      st[depth[i]!] = s;
      const from = idStart[i]!,
        to = idStart[i + 1]!;
      if (from < to) {
        const m = a.minToFinish(s); // X needs nothing: this is the frame's own part
        if (m > maxMin) maxMin = m;
        for (let k = from; k < to; k++) {
          ci[nci] = ids[k]!;
          mins[nci++] = m;
        }
      }
      i++;
    }
    // counting sort by the bytes left (small integers)
    const starts = new Int32Array(maxMin + 2);
    for (let k = 0; k < nci; k++) starts[mins[k]! + 1]!++;
    for (let m = 1; m < starts.length; m++) starts[m]! += starts[m - 1]!;
    const ciIds = new Int32Array(nci),
      ciMin = new Int32Array(nci);
    for (let k = 0; k < nci; k++) {
      const at = starts[mins[k]!]!++;
      ciIds[at] = ci[k]!;
      ciMin[at] = mins[k]!;
    }
    const popRoots = pops.slice(0, npops);
    // a pop root of a string frame is its closing quote: every token below writes the same characters before it
    const popChars = popRoots.map((r) => this.chars[ids[idStart[r]!]!]!);
    const e = this.entry(ciIds, ciMin, { depRoots: roots.slice(0, nroots), popRoots, popChars });
    this.account(e);
    this.frames.set(key, e);
    this.frameStats.frames++;
    this.frameStats.ms += performance.now() - t0;
    return e;
  }

  /**
   * The context-dependent tokens of one frame: walk the subtrees under `roots` from the real `state` (the nodes above
   * them only to reach them), adding tokens whose end state needs at most `slack` bytes (into `allowed` and `acc`).
   */
  private depWalk(state: number, roots: Int32Array, slack: number, allowed: Uint8Array, acc: Composed): void {
    if (roots.length === 0) return;
    const a = this.automaton;
    const t = this.vocab.trie;
    const st = this.stack;
    st[0] = state;
    const depth = t.depth,
      byte = t.byte,
      end = t.end;
    let p = 0,
      i = 1;
    while (p < roots.length) {
      const r = roots[p]!;
      if (r >= end[i]!) {
        i = end[i]!; // no root below i
        continue;
      }
      const s = a.step(st[depth[i]! - 1]!, byte[i]!);
      if (s < 0) {
        i = end[i]!;
        while (p < roots.length && roots[p]! < i) p++;
        continue;
      }
      st[depth[i]!] = s;
      if (i < r) {
        i++; // an ancestor of r: its own tokens are not this frame's dependent ones
        continue;
      }
      // i === r: the whole subtree is dependent
      const stop = end[r]!;
      this.subtree(r, s, slack, allowed, acc);
      i = stop;
      p++;
    }
  }

  /** Walk the subtree of node `r` whose state is `s` (already in the stack at depth[r]), adding its tokens. */
  private subtree(r: number, s: number, slack: number, allowed: Uint8Array, acc: Composed): void {
    const a = this.automaton;
    const t = this.vocab.trie;
    const st = this.stack;
    const depth = t.depth,
      byte = t.byte,
      end = t.end,
      idStart = t.idStart,
      ids = t.ids;
    st[depth[r]!] = s;
    const stop = end[r]!;
    let j = r;
    while (j < stop) {
      let sj = s;
      if (j !== r) {
        sj = a.step(st[depth[j]! - 1]!, byte[j]!);
        if (sj < 0) {
          j = end[j]!;
          continue;
        }
        st[depth[j]!] = sj;
      }
      const from = idStart[j]!,
        to = idStart[j + 1]!;
      if (from < to) {
        const m = a.minToFinish(sj);
        if (m <= slack) {
          if (m > acc.maxAfter) acc.maxAfter = m;
          for (let k = from; k < to; k++) {
            const id = ids[k]!;
            if (!allowed[id]) {
              allowed[id] = 1;
              acc.count++;
            }
          }
        }
      }
      j++;
    }
  }

  /** The mask of `state` from its stacks' frame splits: the precomputed context-independent tokens plus the
   * context-dependent subtrees walked from the real state (pop roots from the state below the top). Exact: the tests
   * compare it with `walk` on random states. */
  private compose(state: number, slack: number, allowed: Uint8Array): Composed {
    const a = this.automaton;
    const acc: Composed = { allowed, count: 0, maxAfter: 0 };
    const tops = a.stackTops(state);
    const entries: Array<FrameEntry | undefined> = [];
    let filled = false;
    for (const { top, restMin } of tops) {
      if (top === '') {
        entries.push(undefined); // an empty stack: a complete answer takes no more bytes
        continue;
      }
      const e = this.frameEntry(top);
      entries.push(e);
      const lim = slack - restMin;
      const n = e.ciIds.length;
      if (e.count === 0) continue;
      if (!filled && e.bits && e.ciMin[n - 1]! <= lim) {
        // the common case: a copy of the precomputed mask (`allowed` is all zeros until `filled`)
        allowed.set(e.bits);
        acc.count = e.count;
        acc.maxAfter = Math.max(acc.maxAfter, restMin + e.ciMin[n - 1]!);
        filled = true;
        continue;
      }
      if (!filled) {
        allowed.fill(0);
        filled = true;
      }
      const { ciIds, ciMin, room } = e;
      const chars = this.chars;
      for (let k = 0; k < n && ciMin[k]! <= lim; k++) {
        const id = ciIds[k]!;
        if (room !== Infinity && chars[id]! > room) continue;
        if (restMin + ciMin[k]! > acc.maxAfter) acc.maxAfter = restMin + ciMin[k]!;
        if (!allowed[id]) {
          allowed[id] = 1;
          acc.count++;
        }
      }
    }
    if (!filled) allowed.fill(0);
    entries.forEach((e, k) => {
      if (!e) return;
      this.depWalk(state, e.depRoots, slack, allowed, acc);
      if (e.popRoots.length === 0) return;
      const below = a.popState(state, k);
      for (let p = 0; p < e.popRoots.length; p++)
        if (e.popChars[p]! <= e.room) this.subtree(e.popRoots[p]!, below, slack, allowed, acc);
    });
    return acc;
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
    return { allowed, count: this.compose(state, slack, allowed).count, eos }; // compose clears `allowed` itself
  }
}
