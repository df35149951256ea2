// Byte-level automata for the structured answer formats: which next byte keeps the text a valid prefix of an answer,
// whether the text so far is a complete answer, and how many bytes at least are still needed to finish one.
// States are packed into one non-negative int (dead = -1) so the token trie walk in mask.ts allocates nothing.
//
// A format is a bounded list: PREFIX, then ITEM (SEPARATOR ITEM)*, then SUFFIX, or the whole-answer alternative
// (e.g. "none"). Items are sequences of literals, free-text fields and enumerated fields. Bounds (max items, max field
// bytes) make every answer finite; together with the token budget in mask.ts this guarantees termination.
// Over ~400 lines on purpose: one automaton: its packed state layout, stepping and budget functions must change
// together.

import type { ListFormat, Segment } from '../../data/tasks/index.js';

export type { ListFormat, Segment } from '../../data/tasks/index.js';

const enum K {
  Byte,
  Field,
  Enum,
  BranchA,
  BranchB,
  End,
}

interface Slot {
  kind: K;
  byte: number;
  /** Field: allowed ASCII bytes (bitmap over 0..127) */
  allow?: Uint8Array;
  maxBytes?: number;
  /** Field: commas allowed inside (not followed by a space) */
  commas?: boolean;
  /** Field with commas: the format continues with ", ", which a ", " inside the field starts */
  commaEnds?: boolean;
  /** Enum: trie: child[node*256+byte] = node+1 (0 = none), terminal[node] */
  child?: Int32Array;
  terminal?: Uint8Array;
  /** Enum: min bytes from a node to a terminal */
  nodeMin?: Int32Array;
}

// packed state layout (30 bits): pc 7 | sub 8 | utf8 pending 2 | items 6 | none index 3 | main dead 1 | field has a
// letter/digit 1 | at the very start 1 | field just read a comma 1
const PC_BITS = 7,
  SUB_SHIFT = 7,
  U_SHIFT = 15,
  C_SHIFT = 17,
  N_SHIFT = 23,
  D_SHIFT = 26,
  G_SHIFT = 27,
  S_SHIFT = 28;
const P_SHIFT = 29;
// widths of the multi-bit fields (value = (state >>> X_SHIFT) & X_MASK) and the one-bit flags, in place
const PC_MASK = 0x7f,
  SUB_MASK = 0xff,
  U_MASK = 0b11,
  C_MASK = 0x3f,
  N_MASK = 0b111;
const MAIN_DEAD = 1 << D_SHIFT,
  HAS_ALNUM = 1 << G_SHIFT,
  AT_START = 1 << S_SHIFT,
  AFTER_COMMA = 1 << P_SHIFT;
const NONE_DEAD = 7;

function pack(pc: number, sub: number, u: number, c: number, none: number, mainDead: number, sig = 0): number {
  return (
    pc |
    (sub << SUB_SHIFT) |
    (u << U_SHIFT) |
    (c << C_SHIFT) |
    (none << N_SHIFT) |
    (mainDead << D_SHIFT) |
    (sig << G_SHIFT)
  );
}

const enc = new TextEncoder();

function isAlnum(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

/** How many continuation bytes a UTF-8 lead byte announces (C2-F4 only; C0/C1/F5+ are never valid leads). */
function utf8Continuations(b: number): number {
  if (b >= 0xc2 && b <= 0xdf) return 1;
  if (b >= 0xe0 && b <= 0xef) return 2;
  if (b >= 0xf0 && b <= 0xf4) return 3;
  return -1;
}

export class FormatAutomaton {
  readonly slots: Slot[] = [];
  private readonly iStart: number;
  private readonly sStart: number;
  private readonly xStart: number;
  private readonly end: number;
  private readonly branchA: number;
  private readonly branchB: number;
  private readonly none: Uint8Array;
  private readonly minFrom: Int32Array;
  /** every byte a finishing path may need as its own token (literals, and one letter for an empty field) */
  readonly closingBytes: Set<number> = new Set();

  constructor(readonly format: ListFormat) {
    if (!format.separator) throw new Error('format: the separator must be non-empty');
    if (format.maxItems < 1 || format.maxItems > 63)
      throw new Error(`format: maxItems must be 1..63, got ${format.maxItems}`);
    const add = (segs: Segment[]): void => {
      for (const s of segs) {
        if (s.kind === 'lit') {
          for (const b of enc.encode(s.text)) {
            this.slots.push({ kind: K.Byte, byte: b });
            this.closingBytes.add(b);
          }
        } else if (s.kind === 'field') {
          if (s.maxBytes < 1 || s.maxBytes > 255)
            throw new Error(`format: field maxBytes must be 1..255, got ${s.maxBytes}`);
          const allow = new Uint8Array(128);
          for (let b = 0x20; b < 0x7f; b++) allow[b] = 1;
          for (const b of enc.encode(s.exclude)) allow[b] = 0;
          if (s.commas) allow[0x2c] = 0; // such commas are handled apart (see `commas`)
          this.slots.push({ kind: K.Field, byte: -1, allow, maxBytes: s.maxBytes, commas: s.commas ?? false });
          this.closingBytes.add(0x61); // "a": the shortest way through an empty field
        } else {
          this.slots.push(this.enumSlot(s.options));
        }
      }
    };
    add(format.prefix);
    this.branchA = this.slots.length;
    this.slots.push({ kind: K.BranchA, byte: -1 });
    this.iStart = this.slots.length;
    add(format.item);
    this.branchB = this.slots.length;
    this.slots.push({ kind: K.BranchB, byte: -1 });
    this.sStart = this.slots.length;
    add([{ kind: 'lit', text: format.separator }]);
    this.xStart = this.slots.length;
    add([{ kind: 'lit', text: format.suffix }]);
    this.end = this.slots.length;
    this.slots.push({ kind: K.End, byte: -1 });
    if (this.slots.length >= 1 << PC_BITS) throw new Error(`format: too long (${this.slots.length} slots)`);
    this.none = enc.encode(format.emptyAnswer ?? '');
    if (this.none.length > 6) throw new Error('format: emptyAnswer must be at most 6 bytes');
    for (const b of this.none) this.closingBytes.add(b);
    this.checkBranches();
    this.slots.forEach((s, i) => {
      if (s.kind === K.Field && s.commas) {
        s.commaEnds =
          this.slots[i + 1]?.kind === K.Byte && this.slots[i + 1]!.byte === 0x2c && this.slots[i + 2]?.byte === 0x20;
      }
    });
    this.minFrom = this.computeMinFrom();
  }

  private enumSlot(options: string[]): Slot {
    if (options.length === 0) throw new Error('format: enum needs options');
    const child: number[] = [];
    const terminal: number[] = [0];
    const grow = (): number => {
      terminal.push(0);
      return terminal.length - 1;
    };
    for (let n = 0; n < 256; n++) child.push(0);
    for (const o of options) {
      let node = 0;
      const bytes = enc.encode(o);
      if (bytes.length === 0) throw new Error('format: empty enum option');
      for (const b of bytes) {
        this.closingBytes.add(b);
        const k = node * 256 + b;
        if (!child[k]) {
          const n = grow();
          for (let i = 0; i < 256; i++) child.push(0);
          child[k] = n + 1;
        }
        node = child[k]! - 1;
      }
      terminal[node] = 1;
    }
    if (terminal.length > 255) throw new Error('format: enum too large (max 255 trie nodes)');
    const nodes = terminal.length;
    const nodeMin = new Int32Array(nodes).fill(1 << 20);
    // children always have larger indices than parents, so one backward pass suffices
    for (let n = nodes - 1; n >= 0; n--) {
      if (terminal[n]) {
        nodeMin[n] = 0;
        continue;
      }
      for (let b = 0; b < 256; b++) {
        const c = child[n * 256 + b]!;
        if (c) nodeMin[n] = Math.min(nodeMin[n]!, 1 + nodeMin[c - 1]!);
      }
    }
    return { kind: K.Enum, byte: -1, child: Int32Array.from(child), terminal: Uint8Array.from(terminal), nodeMin };
  }

  /** At a branch, the byte decides the path: the alternatives must start with distinct literal bytes. */
  private checkBranches(): void {
    const first = (pc: number): number => (this.slots[pc]!.kind === K.Byte ? this.slots[pc]!.byte : -1);
    const fmt = this.format;
    if (fmt.minItems === 0 && fmt.suffix) {
      if (first(this.iStart) < 0 || first(this.iStart) === first(this.xStart)) {
        throw new Error('format: with minItems 0 the item and the suffix must start with different literal bytes');
      }
    }
    if (fmt.suffix && first(this.sStart) === first(this.xStart)) {
      throw new Error('format: the separator and the suffix must start with different bytes');
    }
  }

  private computeMinFrom(): Int32Array {
    const n = this.slots.length;
    const m = new Int32Array(n).fill(-1);
    const get = (pc: number): number => {
      if (m[pc]! >= 0) return m[pc]!;
      const s = this.slots[pc]!;
      let v: number;
      switch (s.kind) {
        case K.End:
          v = 0;
          break;
        case K.BranchB:
          v = get(this.xStart);
          break;
        case K.BranchA:
          v = this.format.minItems === 0 ? Math.min(get(this.iStart), get(this.xStart)) : get(this.iStart);
          break;
        case K.Byte:
          v = 1 + get(this.next(pc));
          break;
        case K.Field:
          v = 1 + get(pc + 1);
          break;
        case K.Enum:
          v = s.nodeMin![0]! + get(pc + 1);
          break;
      }
      m[pc] = v;
      return v;
    };
    for (let pc = n - 1; pc >= 0; pc--) get(pc);
    return m;
  }

  /** The slot after `pc` (the separator loops back to the item start). */
  private next(pc: number): number {
    return pc + 1 === this.xStart && pc >= this.sStart ? this.iStart : pc + 1;
  }

  /** The start state. One leading space is allowed: sentencepiece models (Llama/Mistral) naturally begin an answer
   * with a "▁"-prefixed token, and every parser trims it. */
  initial(): number {
    return pack(0, 0, 0, 0, this.none.length > 0 ? 0 : NONE_DEAD, 0) | AT_START;
  }

  /** Advance the main path from (pc, sub, u, c) by byte b; returns a packed main state (none bits 0) or -1. */
  private stepMain(pc: number, sub: number, u: number, c: number, sig: number, pend: number, b: number): number {
    for (;;) {
      const s = this.slots[pc]!;
      switch (s.kind) {
        case K.Byte: {
          if (b !== s.byte) return -1;
          const np = this.next(pc);
          // entering the item start from the separator or branch A starts a new item
          if (np === this.iStart) c++;
          return pack(np, 0, 0, c, 0, 0);
        }
        case K.Field: {
          if (pend) {
            // the byte after a comma read inside the field: a space makes the comma the format's ", "
            if (b === 0x20) return s.commaEnds && sig ? pack(this.next(this.next(pc) + 1), 0, 0, c, 0, 0) : -1;
            pend = 0; // otherwise the comma was part of the text; read b as a field byte
          }
          if (b === 0x2c && s.commas && sub + 1 <= s.maxBytes!) return pack(pc, sub + 1, 0, c, 0, 0, sig) | AFTER_COMMA;
          if (u > 0) {
            if (b < 0x80 || b > 0xbf) return -1;
            return pack(pc, sub + 1, u - 1, c, 0, 0, sig);
          }
          if (b < 0x80) {
            if (s.allow![b] && (sub > 0 || b !== 0x20) && sub + 1 <= s.maxBytes!) {
              return pack(pc, sub + 1, 0, c, 0, 0, sig | (isAlnum(b) ? 1 : 0));
            }
            if (!sig) return -1;
            break; // leave the field: the byte belongs to what follows
          }
          const k = utf8Continuations(b);
          if (k < 0 || sub + 1 + k > s.maxBytes!) return -1;
          // 2-byte characters from U+00C0 (Latin letters with diacritics, Greek, Cyrillic, ...) are letters; C2 holds
          // NBSP and Latin-1 symbols, and 3/4-byte characters include Unicode spaces, which parsers trim away
          return pack(pc, sub + 1, k, c, 0, 0, sig | (b >= 0xc3 && b <= 0xdf ? 1 : 0));
        }
        case K.Enum: {
          const ch = s.child![sub * 256 + b]!;
          if (ch) return pack(pc, ch - 1, 0, c, 0, 0);
          if (!s.terminal![sub]) return -1;
          break; // option complete: the byte belongs to what follows
        }
        case K.BranchA: {
          // the suffix (empty list) first, if allowed and it starts with b; otherwise the first item
          if (this.format.minItems === 0 && this.format.suffix && this.slots[this.xStart]!.byte === b) {
            pc = this.xStart;
            sub = 0;
            u = 0;
            continue;
          }
          pc = this.iStart;
          sub = 0;
          u = 0;
          c++;
          continue;
        }
        case K.BranchB: {
          if (c < this.format.maxItems && this.slots[this.sStart]!.byte === b) {
            pc = this.sStart;
            sub = 0;
            u = 0;
            continue;
          }
          pc = this.xStart;
          sub = 0;
          u = 0;
          continue;
        }
        case K.End:
          return -1;
      }
      // fell out of a field/enum: move on and re-read the same byte
      pc = this.next(pc);
      sub = 0;
      u = 0;
      if (pc === this.iStart) c++;
    }
  }

  /** One byte. Returns the new packed state or -1 (dead). */
  step(state: number, b: number): number {
    if (state < 0) return -1;
    if (state & AT_START) {
      state &= ~AT_START;
      if (b === 0x20) return state;
    }
    // fast path (most of a mask walk): inside a non-empty field, no pending UTF-8, "none" already ruled out, and an
    // allowed ASCII byte that fits
    if (((state >>> N_SHIFT) & N_MASK) === NONE_DEAD && !(state & MAIN_DEAD) && !(state & AFTER_COMMA) && b < 0x80) {
      const s = this.slots[state & PC_MASK]!;
      if (s.kind === K.Field) {
        const sub = (state >>> SUB_SHIFT) & SUB_MASK;
        if (sub > 0 && sub < s.maxBytes! && s.allow![b] && ((state >>> U_SHIFT) & U_MASK) === 0 && state & HAS_ALNUM) {
          return state + (1 << SUB_SHIFT);
        }
      }
    }
    let none = (state >>> N_SHIFT) & N_MASK;
    if (none !== NONE_DEAD) none = none < this.none.length && this.none[none] === b ? none + 1 : NONE_DEAD;
    let main = -1;
    if (!(state & MAIN_DEAD)) {
      main = this.stepMain(
        state & PC_MASK,
        (state >>> SUB_SHIFT) & SUB_MASK,
        (state >>> U_SHIFT) & U_MASK,
        (state >>> C_SHIFT) & C_MASK,
        (state >>> G_SHIFT) & 1,
        (state >>> P_SHIFT) & 1,
        b,
      );
    }
    if (main < 0 && none === NONE_DEAD) return -1;
    return main < 0 ? pack(0, 0, 0, 0, none, 1) : main | (none << N_SHIFT);
  }

  /** Bytes still needed (at least) to reach a complete answer; 0 = complete. */
  minToFinish(state: number): number {
    if (state < 0) return Infinity;
    let best = Infinity;
    const none = (state >>> N_SHIFT) & N_MASK;
    if (none !== NONE_DEAD) best = this.none.length - none;
    if (!(state & MAIN_DEAD)) best = Math.min(best, this.mainMin(state));
    return best;
  }

  private mainMin(state: number): number {
    const pc = state & PC_MASK,
      sub = (state >>> SUB_SHIFT) & SUB_MASK,
      u = (state >>> U_SHIFT) & U_MASK;
    const s = this.slots[pc]!;
    switch (s.kind) {
      case K.Field:
        if (state & AFTER_COMMA) {
          // after a comma: with a letter, a space completes the ", " that follows (or the field may just end);
          // without one, a letter is still needed
          if (!(state & HAS_ALNUM)) return 1 + this.minFrom[this.next(pc)]!;
          return s.commaEnds ? this.minFrom[this.next(pc)]! - 1 : this.minFrom[this.next(pc)]!;
        }
        // finish a pending UTF-8 character, then add a letter if the field has none yet
        return u + (state & HAS_ALNUM ? 0 : 1) + this.minFrom[this.next(pc)]!;
      case K.Enum:
        return s.nodeMin![sub]! + this.minFrom[this.next(pc)]!;
      case K.BranchB:
      case K.BranchA:
      case K.Byte:
      case K.End:
        return this.minFrom[pc]!;
    }
  }

  /**
   * If `state` is inside a field (main path alive, "none" ruled out, past the start, no pending UTF-8), its slot
   * index; else -1. From such a state, a token made only of field bytes just lengthens the field, which lets mask.ts
   * decide those tokens without walking the trie.
   */
  steadyField(state: number): number {
    if (state < 0 || (state & (MAIN_DEAD | AT_START | AFTER_COMMA)) !== 0) return -1;
    if (((state >>> N_SHIFT) & N_MASK) !== NONE_DEAD || ((state >>> U_SHIFT) & U_MASK) !== 0) return -1;
    const pc = state & PC_MASK;
    return this.slots[pc]!.kind === K.Field ? pc : -1;
  }

  /** Whether the field so far holds a letter (it may end). */
  fieldHasLetter(state: number): boolean {
    return (state & HAS_ALNUM) !== 0;
  }

  /** Field bytes used so far in a field state. */
  fieldUsed(state: number): number {
    return (state >>> SUB_SHIFT) & SUB_MASK;
  }

  /** For each field slot: its allowed-ASCII bitmap, byte limit, and the min bytes to finish once it is left. */
  fieldSlots(): Array<{ pc: number; allow: Uint8Array; maxBytes: number; minAfter: number }> {
    const out: Array<{ pc: number; allow: Uint8Array; maxBytes: number; minAfter: number }> = [];
    this.slots.forEach((s, pc) => {
      if (s.kind === K.Field)
        out.push({ pc, allow: s.allow!, maxBytes: s.maxBytes!, minAfter: this.minFrom[this.next(pc)]! });
    });
    return out;
  }

  isComplete(state: number): boolean {
    return this.minToFinish(state) === 0;
  }

  /** Run a whole string through the automaton (tests, validation). */
  run(text: string, state = this.initial()): number {
    for (const b of enc.encode(text)) {
      state = this.step(state, b);
      if (state < 0) return -1;
    }
    return state;
  }

  /**
   * The same state with its item count set to 0 when the count cannot matter to a token of at most
   * `maxSeparatorsPerToken` separators: the count only gates another separator (c < maxItems), so masks of such
   * states are equal and can be cached under one key.
   */
  withoutItemCount(state: number, maxSeparatorsPerToken: number): number {
    if (state < 0) return state;
    const c = (state >>> C_SHIFT) & C_MASK;
    return this.format.maxItems - c > maxSeparatorsPerToken ? state & ~(63 << C_SHIFT) : state;
  }

  /** First byte of the separator (counted per token to bound how many items one token can finish). */
  get separatorByte(): number {
    return this.slots[this.sStart]!.byte;
  }

  /** An upper bound on minToFinish over all live states (a budget slack above it never changes a mask). */
  get minToFinishBound(): number {
    let maxFrom = 0,
      maxEnum = 0;
    this.slots.forEach((s, pc) => {
      maxFrom = Math.max(maxFrom, this.minFrom[pc]!);
      if (s.kind === K.Enum) maxEnum = Math.max(maxEnum, ...s.nodeMin!.filter((x) => x < 1 << 20));
    });
    // + pending UTF-8 (3) + a missing letter (1) + slack for the comma state (1); "none" is at most 6
    return Math.max(maxFrom + maxEnum + 5, 6);
  }

  /** The longest any answer can be, in bytes (for sizing token budgets). */
  maxAnswerBytes(): number {
    const segBytes = (segs: Segment[]): number =>
      segs.reduce(
        (a, s) =>
          a +
          (s.kind === 'lit'
            ? enc.encode(s.text).length
            : s.kind === 'field'
              ? s.maxBytes
              : Math.max(...s.options.map((o) => enc.encode(o).length))),
        0,
      );
    const f = this.format;
    return Math.max(
      this.none.length,
      segBytes(f.prefix) +
        f.maxItems * segBytes(f.item) +
        (f.maxItems - 1) * enc.encode(f.separator).length +
        enc.encode(f.suffix).length,
    );
  }
}
