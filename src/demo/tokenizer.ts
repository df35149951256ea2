// Demo step 2a: a small byte-level BPE tokenizer trained on the demo's training split (prompts, sentences and answers)
// and written as a standard tokenizer.json + tokenizer_config.json, with a two-marker chat template so that demo
// prompts stay short (short sequences are what make CPU training fast enough for the demo).
import { trainBpe, writeTrainedTokenizer } from '../tokenize/bpe-train.js';
import { loadTokenizer, type LoadedTokenizer } from '../tokenize/tokenizer.js';
import { instructionOf, renderTarget } from '../data/tasks.js';
import type { MedRecord, Triplet } from '../data/schema.js';

/** The demo model's chat markers (special tokens, one id each). */
export const USER_MARK = '<|user|>';
export const ASSISTANT_MARK = '<|assistant|>';

/**
 * The chat template written into the demo tokenizer_config.json (Jinja, as HF chat templates are): a user turn is
 * "<|user|>\n{content}\n", the generation prompt "<|assistant|>\n", and an assistant turn ends with EOS.
 */
export const DEMO_CHAT_TEMPLATE =
  "{% for message in messages %}{% if message['role'] == 'user' %}" +
  USER_MARK +
  "\n{{ message['content'] }}\n" +
  '{% else %}' +
  ASSISTANT_MARK +
  "\n{{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}" +
  '{% if add_generation_prompt %}' +
  ASSISTANT_MARK +
  '\n{% endif %}';

export interface DemoTokenizerOptions {
  vocabSize: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Texts the BPE learns from: every training record as the model will see it (prompt parts, answer, base LM table
 * rows). The task's own instruction (the DrugBank recipe's, as `medlora extract` / `serve` use it) is among them, so
 * the BPE merges it into few tokens and prompts stay short.
 */
export function tokenizerTexts(train: MedRecord[]): string[] {
  const out: string[] = [];
  for (const r of train) {
    out.push(r.input, instructionOf(r), renderTarget(r), ...(r.gold as Triplet[]).map((t) => `${t.head},${t.tail},`));
  }
  return out;
}

/** Train, write into `dir`, and load back through the same loader any model folder uses. */
export function buildDemoTokenizer(dir: string, train: MedRecord[], o: DemoTokenizerOptions): LoadedTokenizer {
  const bpe = trainBpe(tokenizerTexts(train), {
    vocabSize: o.vocabSize,
    specialTokens: { bos: '<s>', eos: '</s>', pad: '<pad>', extra: [USER_MARK, ASSISTANT_MARK] },
    ...(o.onProgress ? { onProgress: o.onProgress } : {}),
  });
  writeTrainedTokenizer(dir, bpe, { addBos: true, chatTemplate: DEMO_CHAT_TEMPLATE, modelMaxLength: 256 });
  return loadTokenizer(dir);
}
