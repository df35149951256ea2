// An Ollama Modelfile for an exported GGUF: FROM, a Go-template TEMPLATE derived from the model's Jinja chat template,
// stop tokens and PARAMETER defaults (Modelfile syntax: ollama docs/modelfile.md; template variables .Messages, .Role,
// .Content: ollama docs/template.md).
// The TEMPLATE is not translated from Jinja source: the Jinja template is *rendered* (with @huggingface/jinja, as medlora
// renders it for training) on probe conversations, the fixed text around each role's content is read off the output, and
// the resulting per-role wrapper model is accepted only if it reproduces the Jinja output exactly on longer conversations
// (with and without a system message). Templates that do not fit that model (e.g. Llama-2's system-inside-first-turn)
// get no TEMPLATE line and a warning: Ollama then falls back to the chat template stored in the GGUF.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { renderChatTemplate, type LoadedTokenizer } from '../tokenize/tokenizer.js';
import type { ChatMessage } from '../tokenize/types.js';
import { MedloraError } from '../util/errors.js';

/** The fixed text a chat template puts around each role's content. */
export interface RoleWrappers {
  /** text before the first message when there is no system message (a template's default system prompt) */
  defaultPrefix: string;
  system: { pre: string; post: string } | undefined;
  user: { pre: string; post: string };
  assistant: { pre: string; post: string };
  /** the generation prompt after the last message */
  generation: string;
  /**
   * false when the template changes message content (e.g. Llama-3's `| trim`): the wrappers then match it only for
   * content without leading / trailing whitespace, and a Go TEMPLATE (which inserts .Content as is) differs on the rest
   */
  contentVerbatim: boolean;
}

const C = (i: number): string => `MEDLORAPROBE${i}X`;

function between(s: string, a: string, b: string | undefined, what: string): string {
  const i = s.indexOf(a);
  if (i < 0) throw new MedloraError(`chat template probe: ${what}`);
  const from = i + a.length;
  if (b === undefined) return s.slice(from);
  const j = s.indexOf(b, from);
  if (j < 0) throw new MedloraError(`chat template probe: ${what}`);
  return s.slice(from, j);
}

function stripPrefix(s: string, p: string, what: string): string {
  if (!s.startsWith(p)) throw new MedloraError(`chat template probe: ${what}`);
  return s.slice(p.length);
}

function stripSuffix(s: string, p: string, what: string): string {
  if (!s.endsWith(p)) throw new MedloraError(`chat template probe: ${what}`);
  return s.slice(0, s.length - p.length);
}

/** Render the wrapper model as the Jinja template would render `messages` (+ the generation prompt). */
export function renderWithWrappers(w: RoleWrappers, messages: ChatMessage[], addGenerationPrompt: boolean): string {
  let s = messages.some((m) => m.role === 'system') ? '' : w.defaultPrefix;
  for (const m of messages) {
    const r =
      m.role === 'system' ? w.system : m.role === 'user' ? w.user : m.role === 'assistant' ? w.assistant : undefined;
    if (!r) throw new MedloraError(`chat template: role ${m.role} has no wrapper`);
    s += r.pre + m.content + r.post;
  }
  return addGenerationPrompt ? s + w.generation : s;
}

/**
 * Read the per-role wrappers off a Jinja chat template by rendering probe conversations, then check them on longer
 * conversations. Throws a MedloraError saying why when the template does not fit.
 */
export function probeChatTemplate(template: string, vars: { bos_token: string; eos_token: string }): RoleWrappers {
  const render = (msgs: ChatMessage[], gen: boolean): string =>
    renderChatTemplate(template, msgs, { ...vars, add_generation_prompt: gen });
  const u = (i: number): ChatMessage => ({ role: 'user', content: C(i) });
  const a = (i: number): ChatMessage => ({ role: 'assistant', content: C(i) });
  const r0 = render([u(1)], false);
  const userPost = between(r0, C(1), undefined, 'the user content does not appear in the output');
  const r1 = render([u(1), a(2)], false);
  const assistantPost = between(r1, C(2), undefined, 'the assistant content does not appear in the output');
  const r2 = render([u(1), a(2), u(3)], false);
  const assistantPre = stripPrefix(
    between(r2, C(1), C(2), 'user then assistant'),
    userPost,
    'user turn end differs between conversations',
  );
  const userPre = stripPrefix(
    between(r2, C(2), C(3), 'assistant then user'),
    assistantPost,
    'assistant turn end differs between conversations',
  );
  const defaultPrefix = stripSuffix(
    r0.slice(0, r0.indexOf(C(1))),
    userPre,
    'the first user turn starts differently from later ones',
  );
  const generation = stripPrefix(
    between(render([u(1)], true), C(1), undefined, 'generation prompt'),
    userPost,
    'generation prompt',
  );
  let system: RoleWrappers['system'];
  try {
    const r3 = render([{ role: 'system', content: C(0) }, u(1)], false);
    system = {
      pre: r3.slice(0, r3.indexOf(C(0))),
      post: stripSuffix(between(r3, C(0), C(1), 'system then user'), userPre, 'system turn'),
    };
  } catch (e) {
    if (!(e instanceof MedloraError) || !/chat template failed/.test(e.message)) throw e; // a template that refuses system messages
    system = undefined;
  }
  const w: RoleWrappers = {
    defaultPrefix,
    system,
    user: { pre: userPre, post: userPost },
    assistant: { pre: assistantPre, post: assistantPost },
    generation,
    contentVerbatim: true,
  };
  const convs: ChatMessage[][] = [[u(1), a(2), u(3), a(4), u(5)]];
  if (system) convs.push([{ role: 'system', content: C(0) }, u(1), a(2), u(3)]);
  for (const conv of convs) {
    for (const gen of [true, false]) {
      const want = render(conv, gen),
        got = renderWithWrappers(w, conv, gen);
      if (want !== got)
        throw new MedloraError(
          `chat template probe: the per-role model gives ${JSON.stringify(got.slice(0, 120))} but the template gives ${JSON.stringify(want.slice(0, 120))}`,
        );
    }
  }
  const padded: ChatMessage[] = [
    { role: 'user', content: ` ${C(1)}\n` },
    { role: 'assistant', content: `\n${C(2)} ` },
    { role: 'user', content: `\t${C(3)}\n\n` },
  ];
  w.contentVerbatim = render(padded, true) === renderWithWrappers(w, padded, true);
  return w;
}

function goLiteral(s: string): string {
  if (s.includes('{{') || s.includes('}}') || s.includes('"""'))
    throw new MedloraError(`chat template: text ${JSON.stringify(s)} cannot be written literally in a Go template`);
  return s;
}

/** The Ollama Go template for the wrappers (.Messages with .Role / .Content). */
export function goTemplate(w: RoleWrappers): string {
  const role = (r: { pre: string; post: string }): string => `${goLiteral(r.pre)}{{ .Content }}${goLiteral(r.post)}`;
  let t = '';
  if (w.defaultPrefix) {
    t += '{{- $system := false }}{{ range .Messages }}{{ if eq .Role "system" }}{{ $system = true }}{{ end }}{{ end }}';
    t += `{{ if not $system }}${goLiteral(w.defaultPrefix)}{{ end }}`;
  }
  t += '{{- range .Messages }}';
  if (w.system) t += `{{ if eq .Role "system" }}${role(w.system)}{{ else if eq .Role "user" }}`;
  else t += '{{ if eq .Role "user" }}';
  t += `${role(w.user)}{{ else if eq .Role "assistant" }}${role(w.assistant)}{{ end }}{{ end }}${goLiteral(w.generation)}`;
  return t;
}

export interface ModelfileResult {
  text: string;
  template: 'converted' | 'none';
  /** why no TEMPLATE was written, or what the written TEMPLATE does differently from the chat template */
  warning?: string;
  stops: string[];
}

/** Quote a Modelfile PARAMETER string value. */
function quote(s: string): string {
  return JSON.stringify(s);
}

/**
 * The Modelfile text. `gguf` is the path written after FROM (relative to the Modelfile, e.g. "./model.gguf");
 * `modelDir` supplies generation_config.json defaults.
 */
export function buildModelfile(o: {
  gguf: string;
  tokenizer: LoadedTokenizer;
  modelDir: string;
  contextLength?: number;
}): ModelfileResult {
  const tok = o.tokenizer;
  const lines = [`# Ollama Modelfile written by medlora export gguf --ollama`, `FROM ${o.gguf}`];
  let template: ModelfileResult['template'] = 'none';
  let warning: string | undefined;
  let assistantPost = '';
  if (tok.chatTemplate === undefined) {
    warning = 'the tokenizer has no chat template: no TEMPLATE written (Ollama sends the prompt as is)';
  } else {
    try {
      const w = probeChatTemplate(tok.chatTemplate, {
        bos_token: tok.addsBos ? '' : (tok.bosToken ?? ''),
        eos_token: tok.eosToken ?? '',
      });
      lines.push(`TEMPLATE """${goTemplate(w)}"""`);
      template = 'converted';
      assistantPost = w.assistant.post;
      const caveats: string[] = [];
      if (!w.contentVerbatim)
        caveats.push(
          'the chat template changes message content (e.g. trims surrounding whitespace) and the TEMPLATE inserts it unchanged, so messages with leading or trailing whitespace render differently in Ollama',
        );
      if (!w.system)
        caveats.push(
          'the chat template has no system role (medlora refuses system messages with it): the TEMPLATE drops them',
        );
      if (caveats.length) warning = `TEMPLATE converted, but ${caveats.join('; ')}`;
    } catch (e) {
      if (!(e instanceof MedloraError)) throw e;
      warning = `the chat template was not converted (${e.message}); no TEMPLATE written: Ollama uses the chat template stored in the GGUF when it recognises it`;
    }
  }
  // stop on every end-of-generation id, and on a special token that ends an assistant turn (e.g. <|im_end|>)
  const stops = new Set<string>();
  for (const id of tok.eosIds) {
    const t = tok.idToToken(id);
    if (t && tok.isSpecial(id)) stops.add(t);
  }
  const endTok = assistantPost.trim();
  if (endTok) {
    const id = tok.tokenToId(endTok);
    if (id !== undefined && tok.isSpecial(id)) stops.add(endTok);
  }
  for (const s of stops) lines.push(`PARAMETER stop ${quote(s)}`);
  // sampling defaults: generation_config.json's when present, else greedy (medlora's extraction default)
  const gc = existsSync(join(o.modelDir, 'generation_config.json'))
    ? (JSON.parse(readFileSync(join(o.modelDir, 'generation_config.json'), 'utf8')) as Record<string, unknown>)
    : {};
  const num = (k: string): number | undefined => (typeof gc[k] === 'number' ? (gc[k] as number) : undefined);
  const sample = gc.do_sample === true;
  lines.push(`PARAMETER temperature ${sample ? (num('temperature') ?? 1) : 0}`);
  if (sample && num('top_p') !== undefined) lines.push(`PARAMETER top_p ${num('top_p')}`);
  if (sample && num('top_k') !== undefined) lines.push(`PARAMETER top_k ${num('top_k')}`);
  if (num('repetition_penalty') !== undefined) lines.push(`PARAMETER repeat_penalty ${num('repetition_penalty')}`);
  if (o.contextLength) lines.push(`PARAMETER num_ctx ${Math.min(o.contextLength, 8192)}`);
  return { text: `${lines.join('\n')}\n`, template, ...(warning ? { warning } : {}), stops: [...stops] };
}
