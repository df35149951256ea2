// The Ollama TEMPLATE cases checked by ollama-template.test.ts: for real chat templates (fixtures/hf), the TEMPLATE
// medlora writes into the Modelfile, the conversations it is rendered on, and the prompt medlora's Jinja chat template
// gives for each. Run directly (node dist/test/export/ollama-cases.js) it prints the cases as JSON for
// test/fixtures/ollama/render.go, which renders them with Go's text/template (make_rendered.sh).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildModelfile } from '../../src/export/ollama.js';
import { loadTokenizer, type LoadedTokenizer } from '../../src/tokenize/tokenizer.js';
import type { ChatMessage } from '../../src/tokenize/types.js';
import { sharedPath } from '../../src/util/paths.js';

const hf = (d: string): string => sharedPath('fixtures', 'hf', d);
const templateFile = (f: string): string =>
  (JSON.parse(readFileSync(hf(`chat-templates/${f}`), 'utf8')) as { chat_template: string }).chat_template;

const sys = (content: string): ChatMessage => ({ role: 'system', content });
const user = (content: string): ChatMessage => ({ role: 'user', content });
const asst = (content: string): ChatMessage => ({ role: 'assistant', content });

/** Conversations as Ollama's /api/chat receives them: alternating turns ending with the user's. */
export const CONVERSATIONS: ChatMessage[][] = [
  [user('What is the maximum daily dose of paracetamol?')],
  [sys('You extract drug names as JSON.'), user('Patient took ibuprofen 400 mg.')],
  [user('List the drugs.'), asst('["aspirin"]'), user('And the doses?')],
  [
    sys('Be brief.\nAnswer in English.'),
    user('Line one\nline two: ü, 猫, "quotes" and {braces}'),
    asst('{"drug": "metformin", "dose": "500 mg"}'),
    user('Thanks. Another one?'),
    asst('No.'),
    user('Why not?'),
  ],
];

/** Conversations whose content has leading / trailing whitespace (a template that trims content differs on them). */
export const PADDED: ChatMessage[][] = [[user('  padded question \n'), asst('\nanswer '), user('next\t')]];

export interface OllamaCase {
  name: string;
  tokenizer: LoadedTokenizer;
  /** the TEMPLATE of the Modelfile medlora writes */
  template: string;
  warning: string | undefined;
  conversations: ChatMessage[][];
  /** what medlora's chat template renders (+ generation prompt), as the text the model reads */
  jinja: string[];
  /** the BOS llama.cpp adds in front of Ollama's rendering (tokenizer.ggml.add_bos_token) */
  bos: string;
}

const SOURCES: Array<{ name: string; dir: string; template?: string; system: boolean }> = [
  { name: 'llama3', dir: 'Meta-Llama-3-8B-Instruct', template: 'llama3.json', system: true },
  { name: 'mistral', dir: 'Mistral-7B-v0.1', template: 'mistral.json', system: false },
  { name: 'qwen2', dir: 'Qwen2.5-0.5B-Instruct', system: true },
  { name: 'chatml', dir: 'Qwen2.5-0.5B-Instruct', template: 'chatml.json', system: true },
  { name: 'smollm2-chatml', dir: 'SmolLM2-135M-Instruct', system: true },
  { name: 'stablelm-zephyr', dir: 'stablelm-zephyr-3b', system: true },
];

const loaded = new Map<string, { tok: LoadedTokenizer; mf: ReturnType<typeof buildModelfile> }>();

export function ollamaCases(o: { padded?: boolean } = {}): OllamaCase[] {
  return SOURCES.map((s) => {
    if (!loaded.has(s.name)) {
      const t = loadTokenizer(hf(s.dir), s.template ? { chatTemplate: templateFile(s.template) } : {});
      loaded.set(s.name, { tok: t, mf: buildModelfile({ gguf: './m.gguf', tokenizer: t, modelDir: hf(s.dir) }) });
    }
    const { tok, mf } = loaded.get(s.name)!;
    const m = /\nTEMPLATE """([\s\S]*?)"""\n/.exec(mf.text);
    if (!m) throw new Error(`${s.name}: no TEMPLATE in the Modelfile (${mf.warning ?? ''})`);
    const conversations = (o.padded ? PADDED : CONVERSATIONS).filter(
      (c) => s.system || !c.some((x) => x.role === 'system'),
    );
    return {
      name: s.name,
      tokenizer: tok,
      template: m[1]!,
      warning: mf.warning,
      conversations,
      jinja: conversations.map((c) => tok.applyChatTemplate(c, { addGenerationPrompt: true })),
      bos: tok.addsBos ? (tok.bosToken ?? '') : '',
    };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const all = [...ollamaCases(), ...ollamaCases({ padded: true }).map((c) => ({ ...c, name: `${c.name}-padded` }))];
  console.log(JSON.stringify(all.map((c) => ({ name: c.name, template: c.template, conversations: c.conversations }))));
}
