// The constraints must never block a real gold answer: every well-formed completion of the medical NER instruction
// data (chemicals, diseases, influences) is accepted by its task automaton, and the malformed ones are exactly those
// an independent line check flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { hasShared, sharedPath } from '../../src/util/paths.js';
import { taskAutomaton } from '../../src/generate/constraints/tasks.js';
import { DEFAULT_BOUNDS } from '../../src/generate/constraints/tasks.js';
import { parseOutput } from '../../src/infer/parse.js';

const FILE = sharedPath('corpora', 'medical-ner-instruct', 'splits_cleaned_20251113', 'train.jsonl');
const skip = !hasShared() || !existsSync(FILE) ? 'needs ../shared/corpora/medical-ner-instruct' : false;
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const LETTER = /[A-Za-z0-9\u00C0-\u07FF]/;

/** Independent well-formedness: the agreed line shapes, the default bounds, printable characters only. */
function wellFormed(task: 'chemicals' | 'diseases' | 'influences', text: string): boolean {
  if (text === 'none') return true;
  const lines = text.split('\n');
  if (lines.length > DEFAULT_BOUNDS.maxItems) return false;
  const okField = (f: string) =>
    f.length > 0 &&
    !/^\s/.test(f) &&
    LETTER.test(f) &&
    bytes(f) <= DEFAULT_BOUNDS.maxFieldBytes &&
    !/[\u0000-\u001f\u007f]/.test(f);
  return lines.every((l) => {
    if (task !== 'influences') return l.startsWith('- ') && okField(l.slice(2));
    const m = /^([^|]+)\| ([^|]+)$/.exec(l);
    return m !== null && okField(m[1]!) && okField(m[2]!);
  });
}

test('medical NER gold completions pass their constraints (and parse)', { skip }, () => {
  const rows = readFileSync(FILE, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { prompt: string; completion: string });
  const counts: Record<string, { n: number; accepted: number }> = {};
  for (const r of rows) {
    const task = /influences/.test(r.prompt)
      ? 'influences'
      : /chemicals mentioned/.test(r.prompt)
        ? 'chemicals'
        : 'diseases';
    let text = r.completion.trim();
    // the agreed influences rendering is "head | tail" without the recipe's bullet
    if (task === 'influences')
      text = text
        .split('\n')
        .map((l) => l.replace(/^- /, ''))
        .join('\n');
    if (!text) text = 'none';
    const a = taskAutomaton(task);
    const s = a.run(text);
    const accepted = s >= 0 && a.isComplete(s);
    assert.equal(accepted, wellFormed(task, text), `${task}: ${JSON.stringify(text).slice(0, 300)}`);
    if (accepted) assert.deepEqual(parseOutput(task, text).unparsed, []);
    const c = (counts[task] ??= { n: 0, accepted: 0 });
    c.n++;
    if (accepted) c.accepted++;
  }
  for (const [t, c] of Object.entries(counts)) console.log(`  ${t}: ${c.accepted}/${c.n} gold completions accepted`);
  assert.equal(counts.chemicals!.accepted, counts.chemicals!.n);
  assert.equal(counts.diseases!.accepted, counts.diseases!.n);
});
