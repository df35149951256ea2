// The layer order of src/, enforced: every relative import of a source file must point to the same or a lower layer,
// and the import graph between folders must have no cycle. The order (DEVELOPERS.md, CONTRIBUTING.md):
//   util < tensor < io < tokenize < data (tasks) < model < adapt < train | generate | export < infer < eval < serve | cli
//   < demo | bench < index (the public entry)
// A failure prints each offending import as `file:line imports target (layer a -> layer b)`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { sourceFiles } from './src-files.js';
import { join, relative, resolve, dirname, sep } from 'node:path';
import { packageRoot } from '../src/util/paths.js';

/** Layer rank of each top-level folder of src/ (same rank: peers, which may import each other only without cycles). */
export const LAYERS: Record<string, number> = {
  util: 0,
  tensor: 1,
  io: 2,
  tokenize: 3,
  data: 4,
  tasks: 4,
  model: 5,
  adapt: 6,
  train: 7,
  generate: 7,
  export: 7,
  infer: 8,
  eval: 9,
  serve: 10,
  cli: 10,
  // `medlora demo` is a CLI command over src/demo, and src/demo never imports src/cli: peers (the cycle test holds)
  demo: 10,
  bench: 11,
  index: 12,
};

/**
 * Known edges against the order, each to be removed by the work named beside it. The list may only shrink: the test
 * fails on a new edge and on an entry that no longer exists (delete it then).
 */
const KNOWN: Record<string, string> = {};
const KNOWN_CYCLES = new Set<string>([]);
const keyOf = (e: Edge): string => `${e.file} -> ${e.target}`;

export interface Edge {
  file: string;
  line: number;
  target: string;
  from: string;
  to: string;
}

/** The folder of a path under src/ (`src/model/llama.ts` -> model; `src/index.ts` -> index). */
export function layerOf(srcRelative: string): string {
  const parts = srcRelative.split(/[\\/]/);
  return parts.length === 1 ? parts[0]!.replace(/\.ts$/, '') : parts[0]!;
}

/** Relative imports (static `import ... from`, `export ... from`, dynamic `import('...')`) of one source text. */
export function importsOf(text: string): { spec: string; line: number }[] {
  const out: { spec: string; line: number }[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    out.push({ spec: m[1]!, line: text.slice(0, m.index).split('\n').length });
  }
  return out;
}

/** Every import edge that points upward, for the source files of `srcDir` (test files beside sources included). */
export function layerViolations(srcDir: string): { upward: Edge[]; outside: Edge[]; unknown: string[] } {
  const upward: Edge[] = [];
  const outside: Edge[] = [];
  const unknown = new Set<string>();
  for (const file of sourceFiles(srcDir)) {
    const rel = relative(srcDir, file);
    const from = layerOf(rel);
    if (!(from in LAYERS)) unknown.add(from);
    for (const { spec, line } of importsOf(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec);
      const targetRel = relative(srcDir, target);
      if (targetRel.startsWith('..')) {
        // a source file reaching outside src/ (test helpers, bench): sources must not depend on tests
        outside.push({
          file: relative(packageRoot(), file),
          line,
          target: spec,
          from,
          to: targetRel.split(sep)[1] ?? '?',
        });
        continue;
      }
      const to = layerOf(targetRel);
      if (!(to in LAYERS)) unknown.add(to);
      if ((LAYERS[to] ?? -1) > (LAYERS[from] ?? 99))
        upward.push({ file: relative(packageRoot(), file), line, target: spec, from, to });
    }
  }
  return { upward, outside, unknown: [...unknown] };
}

/** Cycles between folders (peers of equal rank may import each other, but never both ways round a loop). */
export function folderCycles(srcDir: string): string[][] {
  const graph = new Map<string, Set<string>>();
  for (const file of sourceFiles(srcDir)) {
    const from = layerOf(relative(srcDir, file));
    for (const { spec } of importsOf(readFileSync(file, 'utf8'))) {
      const targetRel = relative(srcDir, resolve(dirname(file), spec));
      if (targetRel.startsWith('..')) continue;
      const to = layerOf(targetRel);
      if (to !== from) (graph.get(from) ?? graph.set(from, new Set()).get(from)!).add(to);
    }
  }
  const cycles: string[][] = [];
  const seen = new Set<string>();
  const visit = (node: string, path: string[]): void => {
    const at = path.indexOf(node);
    if (at >= 0) {
      const cyc = path.slice(at);
      const key = [...cyc].sort().join(',');
      if (!seen.has(key)) {
        seen.add(key);
        cycles.push([...cyc, node]);
      }
      return;
    }
    for (const next of graph.get(node) ?? []) visit(next, [...path, node]);
  };
  for (const node of graph.keys()) visit(node, []);
  return cycles;
}

const fmt = (e: Edge): string => `${e.file}:${e.line} imports ${e.target} (${e.from} -> ${e.to})`;

test('src/ imports point down the layer order, never up', () => {
  const { upward, outside, unknown } = layerViolations(join(packageRoot(), 'src'));
  assert.deepEqual(unknown, [], `folders of src/ with no layer in LAYERS (add them in order): ${unknown.join(', ')}`);
  const fresh = upward.filter((e) => !(keyOf(e) in KNOWN));
  assert.equal(fresh.length, 0, `imports against the layer order:\n  ${fresh.map(fmt).join('\n  ')}`);
  const present = new Set([...upward, ...outside].map(keyOf));
  const gone = Object.keys(KNOWN).filter((k) => !present.has(k));
  assert.deepEqual(gone, [], 'these known back-edges are gone: delete them from KNOWN in test/layering.test.ts');
});

test('no source file under src/ imports from test/ or bench/', () => {
  const outside = layerViolations(join(packageRoot(), 'src')).outside.filter((e) => !(keyOf(e) in KNOWN));
  assert.equal(outside.length, 0, `source files reaching outside src/:\n  ${outside.map(fmt).join('\n  ')}`);
});

test('the folders of src/ import each other without cycles', () => {
  const all = folderCycles(join(packageRoot(), 'src'));
  const keys = new Set(all.map((c) => [...new Set(c)].sort().join(',')));
  const cycles = all.filter((c) => !KNOWN_CYCLES.has([...new Set(c)].sort().join(',')));
  const gone = [...KNOWN_CYCLES].filter((k) => !keys.has(k));
  assert.deepEqual(gone, [], 'these known cycles are gone: delete them from KNOWN_CYCLES in test/layering.test.ts');
  assert.deepEqual(cycles, [], `folder cycles: ${cycles.map((c) => c.join(' -> ')).join('; ')}`);
});

test('the checker catches a planted back-edge, an import from test/ and a cycle', () => {
  // a throwaway src/ tree: model imports adapt (upward), data imports ../../test, train <-> generate (a peer cycle)
  const dir = join(packageRoot(), 'dist', 'layering-plant', 'src');
  const files: Record<string, string> = {
    'model/llama.ts': "import { x } from '../adapt/lora.js';\nexport const y = x;\n",
    'adapt/lora.ts': "import { t } from '../tensor/index.js';\nexport const x = t;\n",
    'tensor/index.ts': 'export const t = 1;\n',
    'data/encode.ts': "import { h } from '../../test/helper.js';\nexport const e = h;\n",
    'train/a.ts': "export { g } from '../generate/b.js';\nexport const a = 1;\n",
    'generate/b.ts': "const m = await import('../train/a.js');\nexport const g = m;\n",
  };
  for (const [rel, text] of Object.entries(files)) {
    const p = join(dir, rel);
    mkdirSync(dirname(p), { recursive: true });
    writeFileSync(p, text);
  }
  const { upward, outside } = layerViolations(dir);
  assert.deepEqual(
    upward.map((e) => `${e.from}->${e.to}:${e.line}`),
    ['model->adapt:1'],
  );
  assert.equal(outside.length, 1);
  assert.match(
    fmt(upward[0]!),
    /layering-plant\/src\/model\/llama\.ts:1 imports \.\.\/adapt\/lora\.js \(model -> adapt\)/,
  );
  const cycles = folderCycles(dir).map((c) => c.join(' -> '));
  assert.equal(cycles.length, 1, `cycles found: ${cycles.join('; ')}`);
  assert.match(cycles[0]!, /train -> generate -> train|generate -> train -> generate/);
});
