// Byte automaton for canonical compact JSON valid against a schema (the JSON Schema subset of src/data/tasks/
// json-schema.ts): keys in `properties` order, optional properties skippable, no whitespace (one leading space is
// allowed for sentencepiece first tokens), numbers without exponent, string escapes as JSON.stringify writes them.
// A state is a set of stacks of frames (anyOf and key prefixes make it nondeterministic); states are interned lazily
// into ints and every transition is memoised, so after warm-up a step is one array lookup (a lazy DFA). Also "any JSON
// object" (`anyObject`, for response_format json_object), and the sentinel frames X/Y with which schema.ts splits the
// vocabulary per top frame.
// Over ~400 lines on purpose: one automaton: its frame kinds, stepping and minimum-budget functions are one state
// machine over one state encoding.
import type { SchemaNode } from '../../data/tasks/index.js';

/** Beyond the JSON Schema subset: any JSON value with at most `depth` levels of nested objects/arrays (the value itself
 * counts as one); `objectOnly`: the value must be an object (OpenAI's response_format json_object). Object keys are
 * any strings, in any order, repeats included (JSON.parse keeps the last). */
export interface AnyValueNode {
  t: 'any';
  depth: number;
  objectOnly?: boolean;
}
type Node = SchemaNode | AnyValueNode;

const enc = new TextEncoder();
const UNKNOWN = -2;

/** JavaScript's String.prototype.trim whitespace (ECMA-262 WhiteSpace + LineTerminator). */
function isJsSpace(cp: number): boolean {
  return (
    (cp >= 9 && cp <= 13) ||
    cp === 0x20 ||
    cp === 0xa0 ||
    cp === 0x1680 ||
    (cp >= 0x2000 && cp <= 0x200a) ||
    cp === 0x2028 ||
    cp === 0x2029 ||
    cp === 0x202f ||
    cp === 0x205f ||
    cp === 0x3000 ||
    cp === 0xfeff
  );
}

const INT_PREFIX = /^-?(?:0|[1-9]\d{0,14})?$/;
const NUM_PREFIX = /^-?(?:(?:0|[1-9]\d{0,14})(?:\.\d{0,10})?)?$/;
const INT_DONE = /^-?(?:0|[1-9]\d{0,14})$/;
const NUM_DONE = /^-?(?:0|[1-9]\d{0,14})(?:\.\d{1,10})?$/;

interface EnumTrie {
  child: Array<Map<number, number>>;
  done: Uint8Array;
  min: Int32Array;
}

export class JsonAutomaton {
  private readonly nodes: Node[] = [];
  private readonly nodeIds = new Map<Node, number>();
  /** per 'any' node with depth >= 1: the node of its members / items (depth one less) */
  private readonly anyChild = new Map<number, number>();
  private readonly lits: Uint8Array[] = [];
  private readonly litIds = new Map<string, number>();
  private readonly enums = new Map<number, EnumTrie>();
  private readonly minVal: number[] = [];
  private readonly stacks: string[][][] = [];
  private readonly ids = new Map<string, number>();
  private trans: Int32Array = new Int32Array(0);
  private mins: Int32Array = new Int32Array(0);
  private readonly numMinMemo = new Map<string, number>();
  private readonly pops: Array<Int32Array | undefined> = [];
  private readonly tops: Array<Array<{ top: string; restMin: number }> | undefined> = [];
  /** per state: -1 unknown, 0/1 touched (see `touched`) */
  private touchedMemo: Int8Array = new Int8Array(0);
  private readonly root: number;
  /** a string node without bounds: the frame whose split stands for every string position (see frameSplit) */
  private readonly freeString: number;
  /** a number node without bounds (values of 'any' nodes) */
  private readonly freeNumber: number;
  /** bytes a shortest finishing path may need as single-byte tokens */
  readonly closingBytes = new Set<number>();

  constructor(
    root: Node,
    readonly opts: { nonBlankStrings?: boolean } = {},
  ) {
    this.root = this.addNode(root);
    this.freeString = this.addNode({ t: 'string', minLength: 0 });
    this.freeNumber = this.addNode({ t: 'number' });
    for (const c of '{}[],:"0123456789-.atrueflsn') this.closingBytes.add(c.charCodeAt(0));
    for (let i = 0; i < this.nodes.length; i++) this.minValue(i);
    this.intern([['W', `V,${this.root}`].reverse()]); // state 0: the start (top of stack last)
  }

  get states(): number {
    return this.stacks.length;
  }

  /** Any JSON object with at most `maxDepth` levels of nesting (itself included), compact (no whitespace but one
   * leading space), numbers without exponent, as in `new JsonAutomaton(schema)`. */
  static anyObject(maxDepth: number): JsonAutomaton {
    return new JsonAutomaton({ t: 'any', depth: maxDepth, objectOnly: true });
  }

  private addNode(n: Node): number {
    const id = this.nodes.length;
    this.nodes.push(n);
    this.nodeIds.set(n, id);
    if (n.t === 'object')
      for (const p of n.props) {
        this.addNode(p.node);
        for (const b of enc.encode(p.key)) this.closingBytes.add(b);
      }
    else if (n.t === 'array') this.addNode(n.items);
    else if (n.t === 'anyOf') for (const a of n.alts) this.addNode(a);
    else if (n.t === 'string' && n.enum) this.enums.set(id, this.enumTrie(n.enum));
    else if (n.t === 'any' && n.depth >= 1) this.anyChild.set(id, this.addNode({ t: 'any', depth: n.depth - 1 }));
    return id;
  }

  private id(n: Node): number {
    return this.nodeIds.get(n)!;
  }

  private lit(text: string): number {
    let i = this.litIds.get(text);
    if (i === undefined) {
      i = this.lits.length;
      this.lits.push(enc.encode(text));
      this.litIds.set(text, i);
    }
    return i;
  }

  /** A trie over the options' JSON-encoded bytes after the opening quote, closing quote included. */
  private enumTrie(options: string[]): EnumTrie {
    const child: Array<Map<number, number>> = [new Map()];
    const done: number[] = [0];
    for (const o of options) {
      let node = 0;
      for (const b of enc.encode(JSON.stringify(o).slice(1))) {
        this.closingBytes.add(b);
        let c = child[node]!.get(b);
        if (c === undefined) {
          c = child.length;
          child.push(new Map());
          done.push(0);
          child[node]!.set(b, c);
        }
        node = c;
      }
      done[node] = 1;
    }
    const min = new Int32Array(child.length).fill(1 << 20);
    for (let n = child.length - 1; n >= 0; n--) {
      if (done[n]) {
        min[n] = 0;
        continue;
      }
      for (const c of child[n]!.values()) min[n] = Math.min(min[n]!, 1 + min[c]!);
    }
    return { child, done: Uint8Array.from(done), min };
  }

  private minValue(id: number): number {
    if (this.minVal[id] !== undefined) return this.minVal[id]!;
    this.minVal[id] = 1 << 20; // guards recursion (schemas are trees, so only for safety)
    const n = this.nodes[id]!;
    let v: number;
    switch (n.t) {
      case 'object': {
        v = 2;
        let first = true;
        for (const p of n.props)
          if (p.required) {
            v += (first ? 0 : 1) + enc.encode(JSON.stringify(p.key)).length + 1 + this.minValue(this.id(p.node));
            first = false;
          }
        break;
      }
      case 'array':
        v = 2 + n.minItems * this.minValue(this.id(n.items)) + Math.max(0, n.minItems - 1);
        break;
      case 'string':
        v = n.enum ? 1 + this.enums.get(id)!.min[0]! : 2 + Math.max(n.minLength, this.opts.nonBlankStrings ? 1 : 0);
        break;
      case 'integer':
      case 'number':
        v = this.numMin(id, '');
        break;
      case 'boolean':
        v = 4;
        break;
      case 'null':
        v = 4;
        break;
      case 'any':
        v = n.objectOnly ? 2 : 1; // {} or a digit
        break;
      case 'anyOf':
        v = Math.min(...n.alts.map((a) => this.minValue(this.id(a))));
        break;
    }
    this.minVal[id] = v;
    return v;
  }

  // ---- numbers
  private numAlive(id: number, text: string): boolean {
    const n = this.nodes[id] as { t: 'integer' | 'number'; minimum?: number; maximum?: number };
    if (!(n.t === 'integer' ? INT_PREFIX : NUM_PREFIX).test(text)) return false;
    const lo = n.minimum ?? -Infinity,
      hi = n.maximum ?? Infinity;
    if (lo === -Infinity && hi === Infinity) return true;
    const neg = text.startsWith('-');
    const body = neg ? text.slice(1) : text;
    // magnitude intervals [a, b) the completions of `body` can reach
    const spans: Array<[number, number]> = [];
    if (body === '') spans.push([0, 1e15]);
    else if (!body.includes('.')) {
      if (body === '0') spans.push(n.t === 'integer' ? [0, 1e-9] : [0, 1]);
      else
        for (let k = 0; body.length + k <= 15; k++) {
          const a = Number(body) * 10 ** k;
          spans.push(n.t === 'integer' ? [a, a + 10 ** k - 1 + 1e-9] : [a, a + 10 ** k]);
        }
    } else {
      const [ip, fp] = body.split('.') as [string, string];
      const a = Number(`${ip}.${fp || '0'}`);
      spans.push([a, a + 10 ** -fp.length]);
    }
    return spans.some(([a, b]) => (neg ? lo <= -a && hi > -b : a <= hi && lo < b));
  }

  private numDone(id: number, text: string): boolean {
    const n = this.nodes[id] as { t: 'integer' | 'number'; minimum?: number; maximum?: number };
    if (!(n.t === 'integer' ? INT_DONE : NUM_DONE).test(text)) return false;
    const v = Number(text);
    return (n.minimum === undefined || v >= n.minimum) && (n.maximum === undefined || v <= n.maximum);
  }

  /** Fewest bytes that complete a number from `text` (breadth-first over digit/sign/point extensions). */
  private numMin(id: number, text: string): number {
    const key = `${id},${text}`;
    const m = this.numMinMemo.get(key);
    if (m !== undefined) return m;
    let frontier = [text];
    let best = 1 << 20;
    for (let d = 0; d <= 18 && frontier.length; d++) {
      if (frontier.some((t) => this.numDone(id, t))) {
        best = d;
        break;
      }
      const next = new Set<string>();
      for (const t of frontier)
        for (const c of '-0123456789.') {
          const nt = t + c;
          if (this.numAlive(id, nt)) next.add(nt);
        }
      frontier = [...next].slice(0, 64);
    }
    this.numMinMemo.set(key, best);
    return best;
  }

  // ---- stacks
  private startValue(rest: string[], id: number, b: number, out: string[][]): void {
    const n = this.nodes[id]!;
    switch (n.t) {
      case 'anyOf':
        for (const a of n.alts) this.startValue(rest, this.id(a), b, out);
        return;
      case 'object':
        if (b === 0x7b) out.push([...rest, `O,${id},0,0`]);
        return;
      case 'array':
        if (b === 0x5b) out.push([...rest, `A,${id},0,0`]);
        return;
      case 'string':
        if (b === 0x22) out.push([...rest, n.enum ? `E,${id},0` : `S,${id},0,0,0,0,0,0`]);
        return;
      case 'integer':
      case 'number': {
        const t = String.fromCharCode(b);
        if ((b === 0x2d || (b >= 0x30 && b <= 0x39)) && this.numAlive(id, t)) out.push([...rest, `N,${id},${t}`]);
        return;
      }
      case 'boolean':
        if (b === 0x74) out.push([...rest, `L,${this.lit('true')},1`]);
        else if (b === 0x66) out.push([...rest, `L,${this.lit('false')},1`]);
        return;
      case 'null':
        if (b === 0x6e) out.push([...rest, `L,${this.lit('null')},1`]);
        return;
      case 'any':
        if (b === 0x7b && n.depth >= 1) out.push([...rest, `F,${id},0`]);
        if (n.objectOnly) return;
        if (b === 0x5b && n.depth >= 1) out.push([...rest, `G,${id},0`]);
        else if (b === 0x22) this.startValue(rest, this.freeString, b, out);
        else if (b === 0x2d || (b >= 0x30 && b <= 0x39)) this.startValue(rest, this.freeNumber, b, out);
        else if (b === 0x74) out.push([...rest, `L,${this.lit('true')},1`]);
        else if (b === 0x66) out.push([...rest, `L,${this.lit('false')},1`]);
        else if (b === 0x6e) out.push([...rest, `L,${this.lit('null')},1`]);
        return;
    }
  }

  private stepStack(st: string[], b: number, out: string[][]): void {
    if (st.length === 0) return;
    const f = st[st.length - 1]!.split(',');
    const rest = st.slice(0, -1);
    const id = Number(f[1]);
    switch (f[0]) {
      case 'X': // the frames below a sentinel state's frame: whatever they would do with b, it depends on them
      case 'Y':
        out.push(['Y']);
        return;
      case 'W':
        if (b === 0x20) out.push(rest);
        else this.stepStack(rest, b, out);
        return;
      case 'V':
        this.startValue(rest, id, b, out);
        return;
      case 'L': {
        const lit = this.lits[id]!,
          off = Number(f[2]);
        if (lit[off] !== b) return;
        out.push(off + 1 === lit.length ? rest : [...rest, `L,${id},${off + 1}`]);
        return;
      }
      case 'O': {
        const n = this.nodes[id] as Extract<SchemaNode, { t: 'object' }>;
        const i = Number(f[2]),
          any = f[3] === '1';
        let requiredLeft = false;
        for (let j = i; j < n.props.length; j++) {
          const p = n.props[j]!;
          const lid = this.lit(`${any ? ',' : ''}${JSON.stringify(p.key)}:`);
          const bytes = this.lits[lid]!;
          if (bytes[0] === b) {
            const ns = [...rest, `O,${id},${j + 1},1`, `V,${this.id(p.node)}`];
            if (bytes.length > 1) ns.push(`L,${lid},1`);
            out.push(ns);
          }
          if (p.required) {
            requiredLeft = true;
            break;
          }
        }
        if (b === 0x7d && !requiredLeft) out.push(rest);
        return;
      }
      case 'A': {
        const n = this.nodes[id] as Extract<SchemaNode, { t: 'array' }>;
        const c = Number(f[2]),
          phase = f[3];
        const cap = (k: number): number => (n.maxItems !== undefined ? k : Math.min(k, n.minItems));
        const item = this.id(n.items);
        if (phase === '0') {
          if (b === 0x5d && n.minItems === 0) out.push(rest);
          if (n.maxItems === undefined || n.maxItems >= 1)
            this.startValue([...rest, `A,${id},${cap(1)},1`], item, b, out);
        } else {
          if (b === 0x2c && (n.maxItems === undefined || c < n.maxItems))
            out.push([...rest, `A,${id},${cap(c + 1)},1`, `V,${item}`]);
          if (b === 0x5d && c >= n.minItems) out.push(rest);
        }
        return;
      }
      case 'F': {
        // any object: after '{' (0) a key or '}', after a member (1) ',' or '}'; a member is "key":value
        if (b === 0x7d) {
          out.push(rest);
          return;
        }
        const member = [...rest, `F,${id},1`, `V,${this.anyChild.get(id)!}`, `L,${this.lit(':')},0`];
        if (f[2] === '0') this.startValue(member, this.freeString, b, out);
        else if (b === 0x2c) out.push([...member, `V,${this.freeString}`]);
        return;
      }
      case 'G': {
        // any array: after '[' (0) an item or ']', after an item (1) ',' or ']'
        if (b === 0x5d) {
          out.push(rest);
          return;
        }
        const item = this.anyChild.get(id)!;
        if (f[2] === '0') this.startValue([...rest, `G,${id},1`], item, b, out);
        else if (b === 0x2c) out.push([...rest, `G,${id},1`, `V,${item}`]);
        return;
      }
      case 'E': {
        const t = this.enums.get(id)!;
        const c = t.child[Number(f[2])]!.get(b);
        if (c === undefined) return;
        out.push(t.done[c] ? rest : [...rest, `E,${id},${c}`]);
        return;
      }
      case 'N': {
        const text = f[2]!;
        if (b === 0x2d || b === 0x2e || (b >= 0x30 && b <= 0x39)) {
          const nt = text + String.fromCharCode(b);
          if (this.numAlive(id, nt)) out.push([...rest, `N,${id},${nt}`]);
          return;
        }
        if (this.numDone(id, text)) this.stepStack(rest, b, out); // the number ends; b belongs to what follows
        return;
      }
      case 'S':
        this.stepString(rest, id, f, b, out);
        return;
    }
  }

  /** String content. Frame S,id,len,esc,u,k,cp,sig: characters so far (saturating when no maxLength), escape state
   * (1 after "\", 2-5 inside "\u00XX"), UTF-8 continuation bytes pending of k, partial code point, non-blank seen. */
  private stepString(rest: string[], id: number, f: string[], b: number, out: string[][]): void {
    const n = this.nodes[id] as Extract<SchemaNode, { t: 'string' }>;
    let len = Number(f[2]),
      esc = Number(f[3]),
      u = Number(f[4]),
      k = Number(f[5]),
      cp = Number(f[6]),
      sig = Number(f[7]);
    const track = this.opts.nonBlankStrings === true;
    const push = (): void => {
      const l = n.maxLength !== undefined ? len : Math.min(len, n.minLength);
      out.push([...rest, `S,${id},${l},${esc},${u},${k},${cp},${track ? sig : 0}`]);
    };
    const startChar = (): boolean => {
      if (n.maxLength !== undefined && len >= n.maxLength) return false;
      len++;
      return true;
    };
    if (u > 0) {
      if (b < 0x80 || b > 0xbf) return;
      if (!track) {
        // only the lead byte's class is kept (1: E0, 2: ED, 3: F0, 4: F4), for the first continuation byte's range
        if (
          u === k &&
          ((cp === 1 && b < 0xa0) || (cp === 2 && b > 0x9f) || (cp === 3 && b < 0x90) || (cp === 4 && b > 0x8f))
        )
          return;
        cp = 0;
        u--;
        if (u === 0) k = 0;
        return push();
      }
      if (u === k) {
        // first continuation byte: no overlongs, surrogates or code points past U+10FFFF
        if (
          (cp === 0 && k === 2 && b < 0xa0) ||
          (cp === 0xd && k === 2 && b > 0x9f) ||
          (cp === 0 && k === 3 && b < 0x90) ||
          (cp === 4 && k === 3 && b > 0x8f)
        )
          return;
      }
      cp = cp * 64 + (b & 0x3f);
      u--;
      if (u === 0) {
        if (!isJsSpace(cp)) sig = 1;
        cp = 0;
        k = 0;
      }
      return push();
    }
    if (esc === 1) {
      const i = '"\\/bfnrtu'.indexOf(String.fromCharCode(b));
      if (i < 0) return;
      if (b === 0x75) {
        esc = 2;
        return push();
      }
      if (i <= 3) sig = 1; // \" \\ \/ \b are not whitespace; \f \n \r \t are
      esc = 0;
      return push();
    }
    if (esc === 2 || esc === 3) {
      if (b !== 0x30) return;
      esc++;
      return push();
    }
    if (esc === 4) {
      if (b !== 0x30 && b !== 0x31) return;
      cp = (b - 0x30) * 16;
      esc = 5;
      return push();
    }
    if (esc === 5) {
      const h = parseInt(String.fromCharCode(b), 16);
      if (Number.isNaN(h) || !/[0-9a-f]/.test(String.fromCharCode(b))) return;
      cp += h;
      if (!isJsSpace(cp)) sig = 1;
      cp = 0;
      esc = 0;
      return push();
    }
    if (b === 0x22) {
      if (len >= n.minLength && (!track || sig)) out.push(rest);
      return;
    }
    if (b < 0x20) return;
    if (b === 0x5c) {
      if (!startChar()) return;
      esc = 1;
      return push();
    }
    if (b < 0x80) {
      if (!startChar()) return;
      if (b !== 0x20) sig = 1;
      return push();
    }
    const c = b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    if (c < 0 || !startChar()) return;
    u = c;
    k = c;
    cp = track
      ? b & (c === 1 ? 0x1f : c === 2 ? 0x0f : 0x07)
      : b === 0xe0
        ? 1
        : b === 0xed
          ? 2
          : b === 0xf0
            ? 3
            : b === 0xf4
              ? 4
              : 0;
    return push();
  }

  private frameMin(fr: string): number {
    const f = fr.split(',');
    const id = Number(f[1]);
    switch (f[0]) {
      case 'W':
      case 'X':
      case 'Y':
        return 0;
      case 'F':
      case 'G':
        return 1;
      case 'V':
        return this.minValue(id);
      case 'L':
        return this.lits[id]!.length - Number(f[2]);
      case 'E':
        return this.enums.get(id)!.min[Number(f[2])]!;
      case 'N':
        return this.numMin(id, f[2]!);
      case 'O': {
        const n = this.nodes[id] as Extract<SchemaNode, { t: 'object' }>;
        let v = 1,
          any = f[3] === '1';
        for (let j = Number(f[2]); j < n.props.length; j++) {
          const p = n.props[j]!;
          if (!p.required) continue;
          v += (any ? 1 : 0) + enc.encode(JSON.stringify(p.key)).length + 1 + this.minValue(this.id(p.node));
          any = true;
        }
        return v;
      }
      case 'A': {
        const n = this.nodes[id] as Extract<SchemaNode, { t: 'array' }>;
        const need = Math.max(0, n.minItems - Number(f[2]));
        return 1 + need * (this.minValue(this.id(n.items)) + 1) - (f[3] === '0' && need > 0 ? 1 : 0);
      }
      case 'S': {
        const n = this.nodes[id] as Extract<SchemaNode, { t: 'string' }>;
        const len = Number(f[2]),
          esc = Number(f[3]),
          u = Number(f[4]),
          sig = Number(f[7]);
        const pending = esc === 1 ? 1 : esc >= 2 ? 6 - esc : u;
        // a pending character can always be completed as a non-blank one
        const blank = this.opts.nonBlankStrings && !sig && pending === 0 ? 1 : 0;
        return pending + Math.max(n.minLength - len, blank) + 1;
      }
    }
    return 1 << 20;
  }

  private intern(set: string[][]): number {
    const keys = [...new Set(set.map((s) => s.join('|')))].sort();
    const key = keys.join('\n');
    let id = this.ids.get(key);
    if (id !== undefined) return id;
    id = this.stacks.length;
    this.stacks.push(keys.map((k) => (k === '' ? [] : k.split('|'))));
    this.ids.set(key, id);
    if (this.trans.length < (id + 1) * 256) {
      const t = new Int32Array(Math.max(1024, this.trans.length * 2)).fill(UNKNOWN);
      t.set(this.trans);
      this.trans = t;
      const m = new Int32Array(t.length / 256).fill(-1);
      m.set(this.mins);
      this.mins = m;
      const tm = new Int8Array(t.length / 256).fill(-1);
      tm.set(this.touchedMemo);
      this.touchedMemo = tm;
    }
    return id;
  }

  initial(): number {
    return 0;
  }

  // ---- context-independent precomputation (schema.ts): a state is a set of stacks; a stack's top frame alone decides
  // every token that never pops it, whatever lies below. A sentinel state [X, top] stands for "top over unknown frames":
  // a path that pops `top` reaches X, and any byte given to X goes to Y ("depends on the frames below").

  /** Per stack of `state`: its top frame ('' for an empty stack: a complete answer) and the fewest bytes the frames
   * below the top need to finish (memoised per state). */
  stackTops(state: number): ReadonlyArray<{ top: string; restMin: number }> {
    let t = this.tops[state];
    if (t) return t;
    t = this.stacks[state]!.map((st) => {
      let restMin = 0;
      for (let i = 0; i < st.length - 1; i++) restMin += this.frameMin(st[i]!);
      return { top: st[st.length - 1] ?? '', restMin };
    });
    this.tops[state] = t;
    return t;
  }

  /** The sentinel state of a top frame: the frame over X. */
  sentinelState(top: string): number {
    return this.intern([['X', top]]);
  }

  /** Whether a state reached from a sentinel state has a path that popped the frame (it holds [X] or [Y]). */
  touched(state: number): boolean {
    return this.touchKind(state) > 0;
  }

  /** Whether a state reached from a sentinel state is exactly [X]: every path popped the frame on this very byte, so in
   * a real state the token has reached the frames below the top, untouched (`popState`). */
  purePop(state: number): boolean {
    return this.touchKind(state) === 2;
  }

  private touchKind(state: number): number {
    let v = this.touchedMemo[state]!;
    if (v < 0) {
      const sts = this.stacks[state]!;
      v = sts.length === 1 && sts[0]!.length === 1 && sts[0]![0] === 'X' ? 2 : 0;
      if (!v) v = sts.some((st) => st.length <= 1 && (st[0] === 'X' || st[0] === 'Y')) ? 1 : 0;
      this.touchedMemo[state] = v;
    }
    return v;
  }

  /** The state of the frames below the top of stack `k` of `state` (that stack with its top popped), memoised. */
  popState(state: number, k: number): number {
    let p = this.pops[state];
    if (!p) {
      p = new Int32Array(this.stacks[state]!.length).fill(-1);
      this.pops[state] = p;
    }
    if (p[k]! < 0) p[k] = this.intern([this.stacks[state]![k]!.slice(0, -1)]);
    return p[k]!;
  }

  /**
   * The frame whose vocabulary split stands for `top`, its key, and the string room left. Inside a string whose
   * minLength is reached (no escape pending; a pending UTF-8 sequence is kept in the frame), the node and its length do
   * not matter: the split is that of a string without bounds (`freeString`) and the caller keeps the tokens writing at
   * most `room` characters (a token that never leaves the string starts the same characters from any such state:
   * continuation bytes start none). Any other frame stands for itself.
   */
  frameSplit(top: string): { key: string; frame: string; room: number } {
    if (top[0] !== 'S') return { key: top, frame: top, room: Infinity };
    const f = top.split(',');
    const n = this.nodes[Number(f[1])] as Extract<SchemaNode, { t: 'string' }>;
    const len = Number(f[2]);
    if (len < n.minLength || f[3] !== '0') return { key: top, frame: top, room: Infinity };
    const frame = `S,${this.freeString},0,${f.slice(3).join(',')}`;
    return { key: frame, frame, room: n.maxLength === undefined ? Infinity : n.maxLength - len };
  }

  /** One byte; the next state or -1 (dead). */
  step(state: number, b: number): number {
    if (state < 0) return -1;
    const t = this.trans[state * 256 + b]!;
    if (t !== UNKNOWN) return t;
    const out: string[][] = [];
    for (const st of this.stacks[state]!) this.stepStack(st, b, out);
    const next = out.length ? this.intern(out) : -1;
    this.trans[state * 256 + b] = next;
    return next;
  }

  /** Bytes still needed (at least) to complete the value; 0 = complete. */
  minToFinish(state: number): number {
    if (state < 0) return Infinity;
    const m = this.mins[state]!;
    if (m >= 0) return m;
    let best = 1 << 20;
    for (const st of this.stacks[state]!) {
      let v = 0;
      for (const fr of st) v += this.frameMin(fr);
      if (v < best) best = v;
    }
    this.mins[state] = best;
    return best;
  }

  isComplete(state: number): boolean {
    return this.minToFinish(state) === 0;
  }

  run(text: string, state = this.initial()): number {
    for (const b of enc.encode(text)) {
      state = this.step(state, b);
      if (state < 0) return -1;
    }
    return state;
  }
}
