// `data preview`: every token of an encoded record with whether it carries loss, so a user can see that only the
// answer and its EOS are trained (a prompt leaking into the loss is the most common silent fine-tuning bug).
import type { TextTokenizer } from '../tokenize/types.js';
import type { EncodedExample } from './encode.js';
import { IGNORE_INDEX } from './encode.js';

export interface PreviewToken {
  index: number;
  id: number;
  /** the vocabulary string (e.g. "Ġthe", "▁the", "<0x0A>") */
  token: string;
  /** the token decoded alone (readable text) */
  text: string;
  trained: boolean;
}

export interface PreviewSummary {
  id: string;
  tokens: PreviewToken[];
  promptTokens: number;
  trainedTokens: number;
  /** decode of the trained tokens: should read as exactly the answer followed by EOS */
  trainedText: string;
  truncated: boolean;
}

/**
 * The text token i adds, decoded in context: decode(window up to i) minus decode(window before i). Decoding a token
 * alone loses SentencePiece word-start spaces and splits multi-byte characters; an 8-token window keeps both.
 */
function tokenTexts(ids: number[], tok: TextTokenizer): string[] {
  return ids.map((_, i) => {
    const from = Math.max(0, i - 8);
    const before = i > from ? tok.decode(ids.slice(from, i)) : '';
    const upto = tok.decode(ids.slice(from, i + 1));
    return upto.startsWith(before) ? upto.slice(before.length) : tok.decode([ids[i]!]);
  });
}

export function previewExample(e: EncodedExample, tok: TextTokenizer): PreviewSummary {
  const texts = tokenTexts(e.input_ids, tok);
  const tokens = e.input_ids.map((id, index) => ({
    index,
    id,
    token: tok.idToToken(id) ?? `<id ${id}>`,
    text: texts[index]!,
    trained: e.labels[index] !== IGNORE_INDEX,
  }));
  const trainedIds = e.input_ids.filter((_, i) => e.labels[i] !== IGNORE_INDEX);
  return {
    id: e.id,
    tokens,
    promptTokens: tokens.filter((t) => !t.trained).length,
    trainedTokens: trainedIds.length,
    trainedText: tok.decode(trainedIds),
    truncated: e.truncated,
  };
}

const vis = (s: string): string => JSON.stringify(s).slice(1, -1);

/**
 * Terminal rendering: the text with trained tokens in green brackets ⟦...⟧ (colour only on a TTY), then a table of
 * the tokens around the prompt/answer boundary and the end.
 */
export function renderPreview(p: PreviewSummary, color: boolean, context = 4): string {
  const g = (s: string): string => (color ? `\x1b[1;32m${s}\x1b[0m` : s);
  const d = (s: string): string => (color ? `\x1b[2m${s}\x1b[0m` : s);
  const lines: string[] = [];
  lines.push(
    `== ${p.id}: ${p.tokens.length} tokens, ${p.promptTokens} masked (prompt, label -100), ${p.trainedTokens} trained${p.truncated ? ', input truncated to fit max_length' : ''}`,
  );
  let text = '';
  let inTrained = false;
  for (const t of p.tokens) {
    if (t.trained && !inTrained) {
      text += g('⟦');
      inTrained = true;
    }
    if (!t.trained && inTrained) {
      text += g('⟧');
      inTrained = false;
    }
    text += t.trained ? g(t.text) : d(t.text);
  }
  if (inTrained) text += g('⟧');
  lines.push(text);
  lines.push('  idx      id  loss  token');
  const boundary = p.tokens.findIndex((t) => t.trained);
  const show = new Set<number>();
  for (let i = Math.max(0, boundary - context); i < Math.min(p.tokens.length, boundary + context); i++) show.add(i);
  for (let i = Math.max(0, p.tokens.length - context); i < p.tokens.length; i++) show.add(i);
  let last = -1;
  for (const i of [...show].sort((a, b) => a - b)) {
    if (last >= 0 && i > last + 1) lines.push('  ...');
    const t = p.tokens[i]!;
    lines.push(
      `  ${String(i).padStart(4)}  ${String(t.id).padStart(6)}  ${t.trained ? g(' yes') : '  - '}  ${vis(t.token)}`,
    );
    last = i;
  }
  lines.push(`  trained text: ${g(JSON.stringify(p.trainedText))}`);
  return lines.join('\n');
}
