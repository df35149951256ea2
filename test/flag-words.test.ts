// Library errors name fields, only the CLI speaks in flags (CONTRIBUTING.md): no string in src/ outside src/cli may
// hold a `--flag`, except the texts listed in ALLOWED (command lines and help texts that are not errors, each with its
// reason). The strings are read with the TypeScript parser, so comments never count; a template piece ending in `--`
// before a substitution (`--${key}`) counts as a flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { sourceFiles } from './src-files.js';
import { dirname, join, relative } from 'node:path';
import ts from 'typescript';
import { packageRoot } from '../src/util/paths.js';

/**
 * File (relative to src/) -> the texts it may hold with a flag in them (a string holding one of them passes), and why
 * they are not errors.
 */
const ALLOWED: Record<string, { texts: string[]; why: string }> = {
  'data/import/drugbank-sentences.ts': { texts: ['templates from --templates'], why: 'importer description (help)' },
  'data/import/generic.ts': { texts: ['(--task, else detected'], why: 'importer description (help)' },
  'data/stats.ts': { texts: ['(see --json)', '(give --tokenizer DIR'], why: 'the `medlora data stats` text report' },
  'demo/run.ts': {
    texts: ['--', 'medlora extract --model ', ' --adapter ', ' --prompt ', ' --max-length ', ' --task '],
    why: 'the command lines the demo prints to run next',
  },
  'eval/eval-outputs.ts': { texts: ['cut by --max-new-tokens'], why: 'the eval summary text (not an error)' },
  'export/ollama.ts': { texts: ['export gguf --ollama'], why: 'the comment line of the written Modelfile' },
  'train/config-run-keys.ts': { texts: ['(the --resume flag wins)'], why: "a config key's documentation" },
  'train/model-card.ts': {
    texts: ['medlora eval --model', 'medlora extract --model ', ' --adapter ', 'medlora eval --compare'],
    why: 'command lines in the model card',
  },
  'train/run.ts': { texts: ['tensorboard --logdir '], why: 'the TensorBoard command line printed at the start' },
};

const FLAG = /(^|[\s(`'"[,;:=])--[a-z]/;
const TRAILING = /(^|[\s(`'"[,;:=])--$/;

/** The string pieces of a source text that hold a flag: [line, text]. */
export function flagStrings(text: string, file = 'x.ts'): Array<[number, string]> {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: Array<[number, string]> = [];
  const visit = (n: ts.Node): void => {
    if (
      ts.isStringLiteral(n) ||
      ts.isNoSubstitutionTemplateLiteral(n) ||
      ts.isTemplateHead(n) ||
      ts.isTemplateMiddle(n) ||
      ts.isTemplateTail(n)
    ) {
      const s = n.text;
      const beforeSubst = ts.isTemplateHead(n) || ts.isTemplateMiddle(n);
      if (FLAG.test(s) || (beforeSubst && TRAILING.test(s)))
        out.push([sf.getLineAndCharacterOfPosition(n.getStart()).line + 1, s]);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** Flag-worded strings of src/ outside src/cli that ALLOWED does not list, and ALLOWED texts no longer found. */
export function flagWordedStrings(srcDir: string): { fresh: string[]; stale: string[] } {
  const fresh: string[] = [];
  const used = new Set<string>();
  for (const file of sourceFiles(srcDir)) {
    const rel = relative(srcDir, file).split('\\').join('/');
    if (rel.startsWith('cli/')) continue;
    for (const [line, s] of flagStrings(readFileSync(file, 'utf8'), file)) {
      // a bare "--" (the piece before a substitution) is allowed only as itself
      const ok = ALLOWED[rel]?.texts.filter((t) => s === t || (t !== '--' && s.includes(t))) ?? [];
      for (const t of ok) used.add(`${rel}: ${t}`);
      if (ok.length === 0) fresh.push(`src/${rel}:${line}: ${JSON.stringify(s)}`);
    }
  }
  const stale = Object.entries(ALLOWED).flatMap(([f, a]) =>
    a.texts.filter((t) => !used.has(`${f}: ${t}`)).map((t) => `${f}: ${t}`),
  );
  return { fresh, stale };
}

test('no string in src/ outside src/cli names a --flag (library errors name fields; the CLI translates)', () => {
  const { fresh, stale } = flagWordedStrings(join(packageRoot(), 'src'));
  assert.deepEqual(fresh, [], `flag-worded strings outside src/cli (name the field instead):\n  ${fresh.join('\n  ')}`);
  assert.deepEqual(stale, [], 'these allowed texts are gone: delete them from ALLOWED in test/flag-words.test.ts');
});

test('the checker finds a planted flag-worded error, and not comments, field names or -->', () => {
  const planted = [
    '// a comment naming --max-new-tokens is fine',
    "const a = 'max_new_tokens must be a positive integer';",
    "const x = s.indexOf('-->');",
    'throw new MedloraError(`--max-new-tokens ${n} is too small`);',
    "posInt(s.batchSize, '--batch-size');",
    'throw new MedloraError(`--${path}: expected a number`);',
    "const md = '---';",
  ].join('\n');
  const hits = flagStrings(planted);
  console.log(`planted: ${JSON.stringify(hits)}`);
  assert.deepEqual(
    hits.map(([line]) => line),
    [4, 5, 6],
  );
  // and the whole check on a throwaway src/ tree: a library file with one fails, the same text in src/cli does not
  const dir = join(packageRoot(), 'dist', 'flag-words-plant', 'src');
  for (const f of ['data/split.ts', 'cli/commands/split.ts']) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), 'throw new MedloraError(`--ratios must sum to 1, got ${sum}`);\n');
  }
  const { fresh } = flagWordedStrings(dir);
  assert.deepEqual(fresh, ['src/data/split.ts:1: "--ratios must sum to 1, got "']);
});
