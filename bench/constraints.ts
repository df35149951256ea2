// Benchmark: per-token overhead of constrained decoding (mask computation) per task and tokenizer, measured along
// random-model decodes (the states a real decode visits), with the pure-token shortcut and with the full trie walk.
// Usage: node dist/bench/constraints.js [--json] [--prompts N] [tokenizer fixture names...]
// (uses the test tokenizer adapter until src/tokenize's loadTokenizer lands on main)
import { automatonConstraint } from '../src/generate/constraints/index.js';
import { ConstraintVocab, TokenConstraint } from '../src/generate/constraints/mask.js';
import { taskAutomaton } from '../src/generate/constraints/tasks.js';
import { STRUCTURED_TASKS } from '../src/eval/parse.js';
import { loadTokenizer } from '../src/tokenize/tokenizer.js';
import { sharedPath } from '../src/util/paths.js';

const fixtureTokenizerDir = (name: string): string => sharedPath('fixtures', 'hf', name);
import { rng, seedOf } from '../test/eval/random-model.js';

interface Row { tokenizer: string; vocab: number; task: string; steps: number; meanMs: number; cpuMeanMs: number; p50Ms: number; p95Ms: number; fullWalkMeanMs: number; usPerVocabEntry: number }

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
}

function main(): void {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const pi = args.indexOf('--prompts');
  const prompts = pi >= 0 ? Number(args[pi + 1]) : 20;
  const names = args.filter((a, i) => !a.startsWith('--') && (pi < 0 || i !== pi + 1));
  const tokenizers = names.length ? names : ['gpt2', 'SmolLM2-135M-Instruct', 'Mistral-7B-v0.1'];
  const rows: Row[] = [];
  for (const name of tokenizers) {
    const tok = loadTokenizer(fixtureTokenizerDir(name));
    const t0 = performance.now();
    const vocab = new ConstraintVocab(tok);
    const buildMs = performance.now() - t0;
    if (!json) console.log(`${name}: vocab ${tok.vocabSize}, token bytes + trie ${buildMs.toFixed(0)} ms, ${vocab.trie.nodes} trie nodes`);
    for (const task of STRUCTURED_TASKS) {
      const c = automatonConstraint(vocab, taskAutomaton(task));
      const buf = new Uint8Array(tok.vocabSize);
      const times: number[] = [];
      let cpuUs = 0; // CPU time as well as wall time: the shared CI machine is often overloaded
      const full: number[] = [];
      const budget = task === 'ade-email' ? 64 : 40;
      for (let p = 0; p < prompts; p++) {
        const r = rng(seedOf(`bench ${task} ${p}`));
        let s = c.initial();
        for (let left = budget; left >= 1; left--) {
          let t = performance.now();
          const cpu0 = process.cpuUsage();
          const m = c.mask(s, left, buf);
          const cpu = process.cpuUsage(cpu0);
          times.push(performance.now() - t);
          cpuUs += cpu.user + cpu.system;
          if (p < 3) { // the full walk is slow: sample it on a few decodes only
            t = performance.now();
            c.mask(s, left, undefined, { fullWalk: true });
            full.push(performance.now() - t);
          }
          // random allowed token (a uniformly random model), EOS with probability 1/(count+1) when allowed
          if (m.eos && r() * (m.count + 1) < 1) break;
          if (m.count === 0) break;
          let k = Math.floor(r() * m.count);
          let id = 0;
          for (; id < m.allowed.length; id++) if (m.allowed[id] && k-- === 0) break;
          s = c.advance(s, id);
        }
      }
      const mean = times.reduce((a, b) => a + b, 0) / times.length;
      const row: Row = {
        tokenizer: name, vocab: tok.vocabSize, task, steps: times.length, meanMs: mean, cpuMeanMs: cpuUs / 1000 / times.length, p50Ms: pct(times, 0.5), p95Ms: pct(times, 0.95),
        fullWalkMeanMs: full.reduce((a, b) => a + b, 0) / full.length, usPerVocabEntry: (1000 * mean) / tok.vocabSize,
      };
      rows.push(row);
      const hitRate = c.cacheStats.hits / Math.max(1, c.cacheStats.hits + c.cacheStats.misses);
      if (!json) {
        console.log(`  ${task.padEnd(13)} ${String(row.steps).padStart(5)} steps  mean ${row.meanMs.toFixed(3)} ms (cpu ${row.cpuMeanMs.toFixed(3)})  p50 ${row.p50Ms.toFixed(3)}  ` +
          `p95 ${row.p95Ms.toFixed(3)}  (full walk ${row.fullWalkMeanMs.toFixed(3)} ms)  ${row.usPerVocabEntry.toFixed(4)} µs/vocab entry, cache hits ${(100 * hitRate).toFixed(0)}%`);
      }
    }
  }
  if (json) console.log(JSON.stringify({ bench: 'constraints', rows }));
}

main();
