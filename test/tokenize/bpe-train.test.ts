// Byte-level BPE training: the written tokenizer.json loads with @huggingface/tokenizers (via loadTokenizer),
// round-trips unseen text, respects the vocabulary size, is deterministic, and resolves its special tokens.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  bytesToUnicode,
  byteLevelPretokens,
  trainBpe,
  trainedTokenizerJson,
  writeTrainedTokenizer,
} from '../../src/tokenize/bpe-train.js';
import { loadTokenizer } from '../../src/tokenize/tokenizer.js';

// a few hundred drug-interaction sentences from templates (no external data needed)
const DRUGS = [
  'warfarin',
  'aspirin',
  'ibuprofen',
  'simvastatin',
  'clarithromycin',
  'metformin',
  'lisinopril',
  'amiodarone',
  'digoxin',
  'fluoxetine',
  'tramadol',
  'omeprazole',
  'clopidogrel',
  'sertraline',
  'lithium',
];
const EFFECTS = [
  'increases the risk of bleeding',
  'raises plasma concentrations',
  'may cause serotonin syndrome',
  'reduces the effect',
  'can lead to hyperkalemia',
  'prolongs the QT interval',
];
function corpus(): string[] {
  const out: string[] = [];
  for (let i = 0; i < DRUGS.length; i++) {
    for (let j = 0; j < DRUGS.length; j++) {
      if (i === j) continue;
      const e = EFFECTS[(i * 7 + j * 3) % EFFECTS.length]!;
      out.push(`Co-administration of ${DRUGS[i]} with ${DRUGS[j]} ${e}.`);
    }
  }
  return out; // 15 * 14 = 210 sentences
}

test("bytesToUnicode is GPT-2's map: 256 distinct printable characters", () => {
  const m = bytesToUnicode();
  assert.equal(new Set(m).size, 256);
  assert.equal(m[0x41], 'A'); // printable ASCII maps to itself
  assert.equal(m[0x20], 'Ġ'); // space is the 33rd non-printable byte (0..32) -> U+0100 + 32 = U+0120 'Ġ'
  assert.equal(m[0x0a], 'Ċ'); // newline: U+0100 + 10 = U+010A 'Ċ'
  assert.deepEqual(byteLevelPretokens('Hi there, 42!'), ['Hi', 'Ġthere', ',', 'Ġ42', '!']);
});

test('trained tokenizer loads, round-trips unseen text and resolves its special tokens', () => {
  const d = mkdtempSync(join(tmpdir(), 'medlora-bpe-'));
  try {
    const texts = corpus();
    assert.ok(texts.length >= 200);
    const t = trainBpe(texts, { vocabSize: 400, specialTokens: { extra: ['<|user|>'] } });
    assert.equal(t.vocab.size, 400); // 4 specials + 256 bytes + 140 merged tokens
    writeTrainedTokenizer(d, t, { chatTemplate: "{% for m in messages %}{{ '<|user|>' + m['content'] }}{% endfor %}" });
    const tok = loadTokenizer(d);
    assert.equal(tok.vocabSize, 400);
    assert.equal(tok.bosToken, '<s>');
    assert.equal(tok.bosId, 0);
    assert.equal(tok.eosToken, '</s>');
    assert.equal(tok.eosId, 1);
    assert.equal(tok.padId, 2);
    assert.equal(tok.tokenToId('<|user|>'), 3);
    assert.equal(tok.addsBos, true);
    assert.deepEqual(tok.eosIds, [1]);
    for (const id of [0, 1, 2, 3]) assert.equal(tok.isSpecial(id), true);
    assert.equal(tok.isSpecial(10), false);

    const unseen = [
      'Ketoconazole inhibits CYP3A4; avoid with atorvastatin (risk ↑ ×10).',
      'naïve café — 日本語 🤖\n\ttabs  and  spaces ',
      '',
      'x',
      'warfarin',
    ];
    for (const u of unseen) {
      const ids = tok.encode(u, { addSpecialTokens: false });
      assert.ok(ids.every((i) => i >= 0 && i < 400));
      assert.equal(tok.decode(ids), u, JSON.stringify(u));
    }
    // BOS first with special tokens; special strings in text are single ids
    const withBos = tok.encode('warfarin');
    assert.equal(withBos[0], 0);
    assert.deepEqual(withBos.slice(1), tok.encode('warfarin', { addSpecialTokens: false }));
    assert.deepEqual(
      tok.encode('<|user|>hi</s>', { addSpecialTokens: false }).filter((i) => i < 4),
      [3, 1],
    );
    // frequent corpus words became single tokens; training compressed the corpus
    // " with" and " of" occur in all 210 sentences
    assert.equal(tok.encode(' with', { addSpecialTokens: false }).length, 1);
    assert.equal(tok.encode(' of', { addSpecialTokens: false }).length, 1);
    const bytes = texts.reduce((s, x) => s + Buffer.byteLength(x), 0);
    const toks = texts.reduce((s, x) => s + tok.encode(x, { addSpecialTokens: false }).length, 0);
    console.log(`  corpus: ${bytes} bytes -> ${toks} tokens (${(bytes / toks).toFixed(2)} bytes/token)`);
    assert.ok(bytes / toks > 3);
    assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'hi' }]), '<|user|>hi');
    // the written file is the standard layout
    const tj = JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8')) as {
      model: { type: string; merges: unknown[] };
    };
    assert.equal(tj.model.type, 'BPE');
    assert.equal(tj.model.merges.length, t.merges.length);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test('training is deterministic and stops when nothing frequent is left', () => {
  const a = JSON.stringify(trainedTokenizerJson(trainBpe(corpus(), { vocabSize: 350 })));
  const b = JSON.stringify(trainedTokenizerJson(trainBpe(corpus(), { vocabSize: 350 })));
  assert.equal(a, b);
  // two short texts cannot fill 1000 entries: training stops early, below the target
  const small = trainBpe(['ab ab ab', 'cd'], { vocabSize: 1000 });
  assert.ok(small.vocab.size < 1000);
  // by hand: pre-tokens "ab", "Ġab", "Ġab", "cd". Pair counts: (a,b) 3, (Ġ,a) 2, (c,d) 1 -> merge a+b; then
  // (Ġ,ab) 2 -> merge; then only (c,d) with count 1 < minFrequency 2 is left: stop. 3 specials + 256 + 2 = 261.
  assert.deepEqual(small.merges, [
    ['a', 'b'],
    ['Ġ', 'ab'],
  ]);
  assert.equal(small.vocab.size, 261);
  // ties go to the lexicographically smaller pair: pre-tokens "xyz", "Ġxyz" give (x,y) 2, (y,z) 2, (Ġ,x) 1;
  // "x y" sorts before "y z", so x+y is merged first
  assert.deepEqual(trainBpe(['xyz xyz'], { vocabSize: 1000 }).merges[0], ['x', 'y']);
  assert.throws(() => trainBpe(['x'], { vocabSize: 100 }), /vocab size 100 is too small; it must be at least 259/);
});
