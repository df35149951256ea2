// Byte automaton tests: the agreed renderings are accepted and complete, malformed text dies, bounds hold, and the
// minimum bytes to finish match hand counts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { taskAutomaton } from '../../../src/generate/constraints/tasks.js';
import { getTask } from '../../../src/data/tasks/index.js';

const parseOutput = (task: string, text: string) => getTask(task).parse(text);

const complete = (task: Parameters<typeof taskAutomaton>[0], text: string) => {
  const a = taskAutomaton(task);
  const s = a.run(text);
  return s >= 0 && a.isComplete(s);
};
const alive = (task: Parameters<typeof taskAutomaton>[0], text: string) => taskAutomaton(task).run(text) >= 0;

test('accepts the agreed renderings of every structured task', () => {
  assert.ok(
    complete('ddi-triplets', '<aspirin, may increase the anticoagulant activities of, warfarin>\n<A, effect, B>'),
  );
  assert.ok(complete('chemprot', '<tamoxifen, CPR:4, estrogen receptor>\n<x, CPR:10, y>'));
  assert.ok(complete('chemicals', '- cocaine\n- 5-fluorouracil\n- (+)-catechin'));
  assert.ok(complete('diseases', '- β-thalassemia'));
  assert.ok(complete('influences', 'cimetidine | impotence\nranitidine | confusion'));
  assert.ok(complete('drug-ae', 'Abilify | nausea'));
  // ade-email is compact canonical JSON, exactly as rendered (src/data/tasks/ade-email.ts)
  assert.ok(complete('ade-email', '{"drug_name":"Abilify","adverse_events":["nausea","vomiting"]}'));
  assert.ok(complete('ade-email', '{"drug_name":"Abilify","adverse_events":[]}'));
  assert.ok(!alive('ade-email', '{"drug_name": "Abilify"')); // the spaced form was never the trained format
  for (const t of ['ddi-triplets', 'chemprot', 'chemicals', 'diseases', 'influences', 'drug-ae'] as const)
    assert.ok(complete(t, 'none'), t);
});

test('prefixes are alive but not complete; malformed text dies', () => {
  assert.ok(alive('ddi-triplets', '<aspirin, eff') && !complete('ddi-triplets', '<aspirin, eff'));
  assert.ok(!complete('chemicals', '- ')); // an empty field cannot end
  assert.ok(!complete('chemicals', '- ...')); // nor one with no letter or digit
  assert.ok(!complete('chemicals', 'no'));
  assert.ok(alive('influences', 'no')); // "no" may still become "none" or "nortriptyline | ..."
  assert.ok(complete('influences', 'none') && alive('influences', 'none | x') && !alive('influences', 'none\n'));
  assert.ok(!alive('ddi-triplets', '<a, b, c, d>')); // a fourth comma-separated field
  assert.ok(!alive('ddi-triplets', '< a, b, c>')); // fields do not start with a space
  assert.ok(!alive('chemprot', '<a, CPR:11, b>'));
  assert.ok(!alive('chemicals', '- a\n\n- b')); // blank lines are not part of the format
  assert.ok(!alive('chemicals', '- a\tb')); // control characters never are
  assert.ok(complete('ade-email', '{"drug_name":"a\\"b","adverse_events":[]}')); // JSON escapes, as JSON.stringify writes them
  assert.ok(!alive('ade-email', '{"drug_name":"a","adverse_events":["x",]}'));
  assert.ok(
    !alive('ade-email', '{"drug_name":" ",') && !complete('ade-email', '{"drug_name":"\\n","adverse_events":[]}'),
  ); // blank strings never end
  assert.ok(!alive('chemicals', '- a\xff'.replace('\xff', '\u0000')));
  assert.ok(!alive('diseases', 'none\n- x'));
  // one leading space (a sentencepiece "▁" first token) is allowed, two are not
  assert.ok(complete('ade-email', ' {"drug_name":"a","adverse_events":[]}') && complete('chemicals', ' none'));
  assert.ok(!alive('chemicals', '  - a'));
});

test('commas inside triplet names: allowed unless followed by a space', () => {
  assert.ok(complete('chemprot', '<2,4-dinitrophenol, CPR:4, uncoupling protein 1,2>'));
  assert.ok(complete('ddi-triplets', '<a,b, effect, c,d>'));
  assert.ok(!alive('ddi-triplets', '<a, b, c, d')); // ", " after the relation starts the tail; a third ", " dies
  assert.ok(!alive('ddi-triplets', '<a, b,c, d>')); // no commas in relation text
  assert.ok(!alive('chemprot', '<x, CPR:4, y, z>')); // ", " inside the tail
  assert.ok(!alive('chemprot', '<,, CPR:4')); // the head still needs a letter before its ", "
  const c = taskAutomaton('chemprot');
  // after "<x,": a space completes ", " -> then "CPR:1" (5) + ", a>" (4) = 1 + 9 = 10
  assert.equal(c.minToFinish(c.run('<x,')), 10);
  assert.equal(c.minToFinish(c.run('<,')), 1 + 2 + 5 + 4); // a letter, ", ", "CPR:1", ", a>"
  assert.deepEqual(parseOutput('chemprot', '<2,4-dinitrophenol, CPR:4, uncoupling protein 1,2>').items, [
    { head: '2,4-dinitrophenol', relation: 'CPR:4', tail: 'uncoupling protein 1,2' },
  ]);
  assert.ok(complete('chemicals', '- 5,5-dimethyl, 3-x')); // bullet names take any commas
});

test('UTF-8 is validated across bytes', () => {
  const a = taskAutomaton('chemicals');
  let s = a.run('- ');
  s = a.step(s, 0xce); // lead byte of "β" (CE B2)
  assert.ok(s >= 0 && !a.isComplete(s));
  assert.equal(a.minToFinish(s), 1); // one continuation byte
  assert.equal(a.step(s, 0x41), -1); // an ASCII byte cannot follow a lead byte
  s = a.step(s, 0xb2);
  assert.ok(a.isComplete(s));
  assert.equal(a.step(a.run('- '), 0x80), -1); // a continuation byte cannot start a character
  assert.equal(a.step(a.run('- '), 0xc0), -1); // C0/C1 are never valid leads
  // only letters make a field non-empty for the parser: NBSP, Unicode spaces and symbols do not
  assert.ok(!a.isComplete(a.run('- \u00a0')) && !a.isComplete(a.run('- \u3000')) && !a.isComplete(a.run('- \u2013')));
  assert.ok(a.isComplete(a.run('- é')) && a.isComplete(a.run('- \u00a0x')));
  assert.equal(a.minToFinish(a.step(a.run('- '), 0xe3)), 3); // two continuation bytes + a letter
});

test('bounds: field length and item count', () => {
  const a = taskAutomaton('chemicals', { maxFieldBytes: 5, maxItems: 2 });
  assert.ok(a.run('- abcde') >= 0);
  assert.equal(a.run('- abcdef'), -1);
  assert.ok(a.isComplete(a.run('- a\n- b')));
  assert.equal(a.run('- a\n- b\n'), -1);
  // a 3-byte character does not fit in the last 2 bytes of a field
  const b = taskAutomaton('chemicals', { maxFieldBytes: 4 });
  assert.equal(b.step(b.run('- ab'), 0xe2), -1);
  assert.ok(b.step(b.run('- ab'), 0xce) >= 0);
});

test('minimum bytes to finish, counted by hand', () => {
  // chemicals: min("none" = 4, "- a" = 3) = 3
  assert.equal(taskAutomaton('chemicals').minToFinish(taskAutomaton('chemicals').initial()), 3);
  // triplets: min("none" = 4, "<a, a, a>" = 9) = 4; after "<": "a, a, a>" = 8
  const t = taskAutomaton('ddi-triplets');
  assert.equal(t.minToFinish(t.initial()), 4);
  assert.equal(t.minToFinish(t.run('<')), 8);
  // chemprot after "<x, ": "CPR:1" (5) + ", " (2) + "a" (1) + ">" (1) = 9; after "<x, CPR:1": 4 (", a>"), as CPR:1 is complete
  const c = taskAutomaton('chemprot');
  assert.equal(c.minToFinish(c.run('<x, ')), 9);
  assert.equal(c.minToFinish(c.run('<x, CPR:1')), 4);
  // ade-email: '{"drug_name":"' (14) + "a" (1) + '","adverse_events":[' (20) + "]}" (2) = 37
  const j = taskAutomaton('ade-email');
  assert.equal(j.minToFinish(j.initial()), 37);
  assert.equal(j.minToFinish(j.run('{"drug_name":"X","adverse_events":["')), 1 + 1 + 2); // a"]}
  assert.equal(j.minToFinish(j.run('{"drug_name":"X","adverse_events":["y"')), 2); // ]}
  assert.equal(j.minToFinish(j.run('{"drug_name":"X","adverse_events":["\\u00')), 2 + 1 + 2); // 1f"]}
  // pairs after "x": the field may end: "| a" = 3; after "x|": " a" = 2
  const p = taskAutomaton('influences');
  assert.equal(p.minToFinish(p.run('x')), 3);
  assert.equal(p.minToFinish(p.run('x|')), 2);
  assert.equal(p.minToFinish(p.run('non')), 1); // "none"
  assert.equal(p.minToFinish(p.run('---')), 4); // needs a letter before "| a"
});

test('whatever the automaton completes, the parser reads without leftovers', () => {
  const cases: Array<[Parameters<typeof taskAutomaton>[0], string]> = [
    ['chemicals', '- "x"\n- 1. a\n- * b.\n- none'],
    ['influences', '1. | x\n- a | "b"\nnone | y'],
    ['ddi-triplets', '<"a", (b), c.>\n<1, 2, 3>'],
    ['ade-email', '{"drug_name":"}{x","adverse_events":["a}","{b"]}'],
  ];
  for (const [task, text] of cases) {
    assert.ok(complete(task, text), `${task}: ${text}`);
    assert.deepEqual(parseOutput(task, text).unparsed, [], `${task}: ${text}`);
  }
});

test('applyMask: disallowed and padded ids get -Infinity, EOS only when the answer is complete', async () => {
  const { applyMask } = await import('../../../src/generate/constraints/index.js');
  const allowed = Uint8Array.from([1, 0, 1, 0]);
  const l = Float32Array.from([0.5, 0.6, 0.7, 0.8, 0.9]); // id 4: a padded embedding row beyond the vocabulary
  applyMask(l, { allowed, count: 2, eos: true }, 3);
  assert.deepEqual([...l], [0.5, -Infinity, Math.fround(0.7), Math.fround(0.8), -Infinity]);
  const k = Float32Array.from([0.5, 0.6, 0.7, 0.8]);
  applyMask(k, { allowed, count: 2, eos: false }, 3);
  assert.deepEqual([...k], [0.5, -Infinity, Math.fround(0.7), -Infinity]);
});
