// Token-level constraint: from an automaton state, the set of token ids whose bytes keep the answer valid (a mask
// over the vocabulary) and whether EOS may end it now. Computed by walking the automaton along the token trie.
// With a token budget, a token is allowed only if the answer can still be finished in the tokens left (one token per
// missing byte at worst, plus EOS), so a constrained decode always ends with a complete answer within its budget.
import type { TextTokenizer } from '../../tokenize/types.js';
import { MedloraError } from '../../util/errors.js';
import type { FormatAutomaton } from './format.js';
import { TokenTrie, tokenBytes } from './vocab.js';

export interface MaskResult {
  /** allowed[id] = 1 for every allowed non-EOS token */
  allowed: Uint8Array;
  /** number of allowed non-EOS tokens */
  count: number;
  /** EOS may be generated now (the text so far is a complete answer) */
  eos: boolean;
}

/** What generation needs from a token constraint (list formats: TokenConstraint; JSON schemas: SchemaConstraint). */
export interface Constraint {
  readonly vocab: ConstraintVocab;
  initial(): number;
  /** smallest token budget (EOS included) with which an answer can always be finished */
  minBudget(state?: number): number;
  /** state after a token, or -1 if it is not allowed there */
  advance(state: number, id: number): number;
  isComplete(state: number): boolean;
  /** allowed tokens from `state` with `remaining` tokens left (EOS included); `out` is reused when given;
   * `fullWalk` bypasses every shortcut and cache (for checking them) */
  mask(state: number, remaining?: number, out?: Uint8Array, opts?: { fullWalk?: boolean }): MaskResult;
  /** mask cache statistics (benchmarks) */
  readonly cacheStats: { hits: number; misses: number };
}

/** Precomputed per tokenizer: token bytes, the trie, and which bytes exist as single-byte tokens. */
export class ConstraintVocab {
  readonly bytes: Array<Uint8Array | null>;
  readonly trie: TokenTrie;
  readonly vocabSize: number;
  readonly eosId: number | undefined;
  /** single-byte token id per byte value, or -1 */
  readonly singleByte: Int32Array;

  constructor(tok: TextTokenizer) {
    this.vocabSize = tok.vocabSize;
    this.eosId = tok.eosId;
    this.bytes = tokenBytes(tok);
    this.trie = new TokenTrie(this.bytes);
    this.singleByte = new Int32Array(256).fill(-1);
    this.bytes.forEach((b, id) => {
      if (b && b.length === 1 && this.singleByte[b[0]!]! < 0) this.singleByte[b[0]!] = id;
    });
  }
}

/**
 * For a field, the tokens made only of its bytes ("pure": they just lengthen the field) sorted by length, with the
 * UTF-8 bytes they leave pending; and a trie over all other tokens, the only ones a steady field state must walk.
 */
interface FieldSplit {
  pureIds: Int32Array;
  pureLen: Uint16Array;
  /** UTF-8 continuation bytes still pending after the token */
  pureU: Uint8Array;
  /** bit 0: the token holds a letter (ASCII letter/digit or a 2-byte letter, as in format.ts); bit 1: starts with a space */
  pureFlags: Uint8Array;
  rest: TokenTrie;
}

function splitForField(bytes: Array<Uint8Array | null>, allow: Uint8Array): FieldSplit {
  const pure: Array<{ id: number; len: number; u: number; flags: number }> = [];
  const rest: Array<Uint8Array | null> = bytes.map((bs, id) => {
    if (!bs) return null;
    let u = 0,
      letter = 0;
    for (const b of bs) {
      if (u > 0) {
        if (b < 0x80 || b > 0xbf) return bs;
        u--;
        continue;
      }
      if (b < 0x80) {
        if (!allow[b]) return bs;
        if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)) letter = 1;
        continue;
      }
      const k = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
      if (k < 0) return bs;
      if (b >= 0xc3 && b <= 0xdf) letter = 1;
      u = k;
    }
    pure.push({ id, len: bs.length, u, flags: letter | (bs[0] === 0x20 ? 2 : 0) });
    return null;
  });
  pure.sort((a, b) => a.len - b.len);
  return {
    pureIds: Int32Array.from(pure.map((p) => p.id)),
    pureLen: Uint16Array.from(pure.map((p) => p.len)),
    pureU: Uint8Array.from(pure.map((p) => p.u)),
    pureFlags: Uint8Array.from(pure.map((p) => p.flags)),
    rest: new TokenTrie(rest),
  };
}

/** What a byte-level answer automaton (format.ts for list formats, json.ts for JSON Schemas) offers a constraint. */
export interface ByteAutomaton {
  initial(): number;
  /** state after one byte, or -1 */
  step(state: number, b: number): number;
  isComplete(state: number): boolean;
  /** fewest bytes that finish an answer from `state` */
  minToFinish(state: number): number;
  /** the bytes a shortest finishing path may need */
  readonly closingBytes: Iterable<number>;
}

/**
 * The token-level stepping every automaton-backed constraint shares (a token is its bytes stepped through the
 * automaton) and the vocabulary checks its budget guarantee needs; subclasses compute the masks.
 */
export abstract class AutomatonConstraint<A extends ByteAutomaton> implements Constraint {
  protected readonly stack: Int32Array;
  /** cache statistics (for benchmarks) */
  readonly cacheStats = { hits: 0, misses: 0 };

  constructor(
    readonly vocab: ConstraintVocab,
    readonly automaton: A,
  ) {
    if (vocab.eosId === undefined)
      throw new MedloraError('constrained decoding needs an EOS token; the tokenizer has none');
    // the budget guarantee needs each byte on a shortest finishing path to exist as a token of its own
    for (const b of automaton.closingBytes) {
      if (vocab.singleByte[b]! < 0) {
        throw new MedloraError(
          `constrained decoding: the vocabulary has no single-byte token for ${JSON.stringify(String.fromCharCode(b))} (byte 0x${b.toString(16)})`,
        );
      }
    }
    this.stack = new Int32Array(vocab.trie.maxDepth + 1);
  }

  initial(): number {
    return this.automaton.initial();
  }

  /** Smallest token budget (including EOS) with which an answer can always be finished. */
  minBudget(state = this.initial()): number {
    return this.automaton.minToFinish(state) + 1;
  }

  /** State after a token, or -1 if the token is not allowed there (EOS is not a state change). */
  advance(state: number, id: number): number {
    const bs = this.vocab.bytes[id];
    if (!bs) return -1;
    for (const b of bs) {
      state = this.automaton.step(state, b);
      if (state < 0) return -1;
    }
    return state;
  }

  isComplete(state: number): boolean {
    return this.automaton.isComplete(state);
  }

  abstract mask(state: number, remaining?: number, out?: Uint8Array, opts?: { fullWalk?: boolean }): MaskResult;

  /**
   * Walk trie `t` from `state`, marking in `allowed` every token the automaton accepts whose end state needs at most
   * `slack` bytes to finish (Infinity: no budget). Returns how many were marked and the largest such need.
   */
  protected walkTrie(
    t: TokenTrie,
    state: number,
    slack: number,
    allowed: Uint8Array,
  ): { count: number; maxAfter: number } {
    const a = this.automaton;
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
    return { count, maxAfter };
  }
}

export class TokenConstraint extends AutomatonConstraint<FormatAutomaton> {
  /** per automaton slot index: the pure/rest split of its field (fields with the same bytes share one) */
  private readonly splits = new Map<number, { split: FieldSplit; maxBytes: number; minAfter: number }>();
  /** masks of non-field states (literals, branches, the start), which recur across items and decodes: small LRU */
  private readonly cache = new Map<number, { allowed: Uint8Array; count: number }>();
  private readonly cacheSize = 32;
  private readonly maxSeparators: number;
  private readonly slackBound: number;

  constructor(vocab: ConstraintVocab, automaton: FormatAutomaton) {
    super(vocab, automaton);
    const sep = automaton.separatorByte;
    let maxSep = 0;
    for (const bs of vocab.bytes) {
      if (!bs) continue;
      let n = 0;
      for (const b of bs) if (b === sep) n++;
      if (n > maxSep) maxSep = n;
    }
    this.maxSeparators = maxSep;
    this.slackBound = automaton.minToFinishBound;
    if (this.slackBound >= 1023)
      throw new Error(`constraint: finishing bound ${this.slackBound} too large for the mask cache key`);
    const byAllow = new Map<string, FieldSplit>();
    for (const f of automaton.fieldSlots()) {
      const key = f.allow.join('');
      let split = byAllow.get(key);
      if (!split) {
        split = splitForField(vocab.bytes, f.allow);
        byAllow.set(key, split);
      }
      this.splits.set(f.pc, { split, maxBytes: f.maxBytes, minAfter: f.minAfter });
    }
  }

  /**
   * Allowed tokens from `state`. `remaining` = tokens still allowed including the EOS (Infinity = no budget).
   * `out` is reused when given (must be vocabSize long).
   */
  mask(state: number, remaining = Infinity, out?: Uint8Array, opts: { fullWalk?: boolean } = {}): MaskResult {
    const a = this.automaton;
    let t = this.vocab.trie;
    const allowed = out ?? new Uint8Array(this.vocab.vocabSize);
    allowed.fill(0);
    const complete = a.isComplete(state);
    const eos = complete && remaining >= 1;
    // after a token, `remaining - 1` tokens are left and must cover the missing bytes plus EOS
    const slack = remaining - 2;
    const unbounded = slack === Infinity;
    let count = 0;
    const pc = opts.fullWalk || remaining < 2 ? -1 : a.steadyField(state);
    const f = pc >= 0 ? this.splits.get(pc) : undefined;
    // other states: cached by (state without an item count that cannot matter, slack clamped where it stops mattering)
    let key = -1;
    if (!f && !opts.fullWalk && state >= 0 && remaining >= 2) {
      key = a.withoutItemCount(state, this.maxSeparators) * 1024 + Math.min(slack, this.slackBound + 1);
      const hit = this.cache.get(key);
      if (hit) {
        this.cache.delete(key);
        this.cache.set(key, hit);
        this.cacheStats.hits++;
        allowed.set(hit.allowed);
        return { allowed, count: hit.count, eos };
      }
      this.cacheStats.misses++;
    }
    if (f) {
      // pure tokens: allowed iff they fit in the field (a character left pending must fit whole), do not start an
      // empty field with a space, and leave an answer that can still be finished in the budget
      const used = a.fieldUsed(state);
      const room = f.maxBytes - used;
      const hasLetter = a.fieldHasLetter(state);
      const { pureIds, pureLen, pureU, pureFlags } = f.split;
      for (let k = 0; k < pureIds.length && pureLen[k]! <= room; k++) {
        const fl = pureFlags[k]!;
        if (pureLen[k]! + pureU[k]! > room || (used === 0 && fl & 2)) continue;
        if (unbounded || pureU[k]! + (hasLetter || fl & 1 ? 0 : 1) + f.minAfter <= slack) {
          allowed[pureIds[k]!] = 1;
          count++;
        }
      }
      t = f.split.rest; // everything else goes through the walk below
    }
    if (remaining >= 2 && state >= 0) count += this.walkTrie(t, state, slack, allowed).count;
    if (key >= 0) {
      this.cache.set(key, { allowed: allowed.slice(), count });
      if (this.cache.size > this.cacheSize) this.cache.delete(this.cache.keys().next().value!);
    }
    return { allowed, count, eos };
  }
}

/** A decoding session: tracks the state and the budget; the generation loop asks for a mask and reports choices. */
export class ConstrainedSession {
  private state: number;
  private left: number;
  private readonly buf: Uint8Array;

  constructor(
    readonly constraint: Constraint,
    maxNewTokens: number,
  ) {
    const need = constraint.minBudget();
    if (maxNewTokens < need) {
      throw new MedloraError(
        `max_new_tokens ${maxNewTokens} is too small for a constrained answer of this task (needs at least ${need})`,
      );
    }
    this.state = constraint.initial();
    this.left = maxNewTokens;
    this.buf = new Uint8Array(constraint.vocab.vocabSize);
  }

  get remaining(): number {
    return this.left;
  }
  get complete(): boolean {
    return this.constraint.isComplete(this.state);
  }

  /** The mask for the next token (the returned array is reused between calls). */
  mask(): MaskResult {
    return this.constraint.mask(this.state, this.left, this.buf);
  }

  /** Record the chosen token; returns true when generation is over (EOS chosen). Throws on a disallowed token. */
  accept(id: number): boolean {
    if (this.left <= 0) throw new MedloraError('constrained decoding: token budget exhausted');
    this.left--;
    if (id === this.constraint.vocab.eosId) {
      if (!this.complete) throw new MedloraError('constrained decoding: EOS chosen before the answer was complete');
      return true;
    }
    const next = this.constraint.advance(this.state, id);
    if (next < 0) throw new MedloraError(`constrained decoding: token ${id} is not allowed in this state`);
    this.state = next;
    return false;
  }
}
