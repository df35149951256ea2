// The tokenizer contract the rest of medlora relies on (data preparation, generation, constrained decoding).
// Implemented by src/tokenize/tokenizer.ts over a Hugging Face tokenizer.json (+ tokenizer_config.json).

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | string;
  content: string;
}

export interface TextTokenizer {
  /** number of ids the model's embedding must cover (base vocab + added tokens) */
  readonly vocabSize: number;
  /** special-token ids resolved from the tokenizer files (never guessed); undefined when the model has none */
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  /** pad id: from the files, else undefined (callers decide a fallback, e.g. eos) */
  readonly padId: number | undefined;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  /** whether encode(text, {addSpecialTokens: true}) prepends BOS (Llama/Mistral yes, GPT-2/Qwen2 no) */
  readonly addsBos: boolean;
  encode(text: string, opts?: { addSpecialTokens?: boolean }): number[];
  /**
   * `cleanUpTokenizationSpaces`: HF's post-decode clean-up (" ," -> "," etc.); default: the tokenizer files' setting.
   * Structured extraction turns it off so the parser sees exactly the bytes the constraint automaton accepted.
   */
  decode(ids: number[], opts?: { skipSpecialTokens?: boolean; cleanUpTokenizationSpaces?: boolean }): string;
  /** the token's own string as stored in the vocabulary (e.g. "Ġthe", "▁the", "<0x0A>") */
  idToToken(id: number): string | undefined;
  tokenToId(token: string): number | undefined;
  /** true for special/added control tokens (bos, eos, pad, <|eot_id|>, ...) */
  isSpecial(id: number): boolean;
  /** the chat template from tokenizer_config.json, if any */
  readonly chatTemplate: string | undefined;
  /** render messages with the chat template (throws a clear error when there is none) */
  applyChatTemplate(messages: ChatMessage[], opts?: { addGenerationPrompt?: boolean }): string;
}
