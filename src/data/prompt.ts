// Building the prompt text of a record: the Alpaca template (instruction / input / response sections) or the
// tokenizer's own chat template (instruction and input as one user turn, generation prompt appended).
import { MedloraError, fieldError } from '../util/errors.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { MedRecord } from './schema.js';
import { instructionOf, renderTarget } from './tasks.js';

export type PromptStyle = 'alpaca' | 'chat';
export const PROMPT_STYLES: readonly PromptStyle[] = ['alpaca', 'chat'];

// Stanford Alpaca's PROMPT_DICT (tatsu-lab/stanford_alpaca, train.py): "prompt_input" and "prompt_no_input".
const ALPACA_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n';
const ALPACA_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:\n';

export function alpacaPrompt(instruction: string, input: string): string {
  // function replacements so "$&" etc. in user text are not interpreted
  const t = input.trim() === '' ? ALPACA_NO_INPUT : ALPACA_INPUT;
  return t.replace('{instruction}', () => instruction).replace('{input}', () => input);
}

/** The chat messages for a record: one user turn "instruction\n\ninput" (works with templates that lack a system role). */
export function chatUserContent(instruction: string, input: string): string {
  return input.trim() === '' ? instruction : `${instruction}\n\n${input}`;
}

export function chatPrompt(tok: TextTokenizer, instruction: string, input: string): string {
  if (!tok.chatTemplate)
    throw new MedloraError(
      'prompt style chat: this tokenizer has no chat_template in tokenizer_config.json (use the alpaca prompt style)',
    );
  return tok.applyChatTemplate([{ role: 'user', content: chatUserContent(instruction, input) }], {
    addGenerationPrompt: true,
  });
}

export function buildPrompt(style: PromptStyle, instruction: string, input: string, tok?: TextTokenizer): string {
  if (style === 'alpaca') return alpacaPrompt(instruction, input);
  if (!tok) throw new MedloraError('the chat prompt style needs a tokenizer');
  return chatPrompt(tok, instruction, input);
}

export function parsePromptStyle(s: string | undefined): PromptStyle {
  const v = s ?? 'alpaca';
  if (!(PROMPT_STYLES as readonly string[]).includes(v))
    throw fieldError('prompt_style', `prompt_style must be one of ${PROMPT_STYLES.join(', ')}, got "${v}"`);
  return v as PromptStyle;
}

/** Prompt and target text of a record. */
export function promptAndTarget(
  r: MedRecord,
  style: PromptStyle,
  tok?: TextTokenizer,
): { prompt: string; target: string } {
  return { prompt: buildPrompt(style, instructionOf(r), r.input, tok), target: renderTarget(r) };
}
