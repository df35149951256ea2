// `medlora tokenize`: show how a tokenizer folder splits a text (tokens and ids), for checking prompts and special
// tokens by eye, or as JSON with --json.
import type { CommandSpec } from '../command.js';
import { bool, str } from '../command.js';
import { MedloraError } from '../../util/errors.js';
import { loadTokenizer } from '../../tokenize/tokenizer.js';

export const tokenizeCommand: CommandSpec = {
  name: 'tokenize',
  summary: 'Show the tokens and ids a tokenizer produces for a text',
  positionals: 'TEXT',
  options: {
    tokenizer: {
      type: 'string',
      value: 'DIR',
      required: true,
      description: 'folder with tokenizer.json (or vocab.json + merges.txt)',
    },
    ids: { type: 'boolean', description: 'print only the ids, space separated' },
    'no-special': { type: 'boolean', description: 'do not add BOS/EOS or other template tokens' },
    json: { type: 'boolean', description: 'print one JSON object: ids, tokens, special-token info' },
  },
  details: 'Several positional words are joined with single spaces; quote the text to keep exact whitespace.',
  run(args) {
    if (args.positionals.length === 0) throw new MedloraError('tokenize: give the TEXT to tokenize');
    const text = args.positionals.join(' ');
    const tok = loadTokenizer(str(args, 'tokenizer')!);
    const { ids, tokens } = tok.encodeWithTokens(text, { addSpecialTokens: !bool(args, 'no-special') });
    if (bool(args, 'json')) {
      console.log(
        JSON.stringify({
          text,
          ids,
          tokens,
          count: ids.length,
          vocab_size: tok.vocabSize,
          bos_id: tok.bosId ?? null,
          eos_id: tok.eosId ?? null,
          eos_ids: tok.eosIds,
          pad_id: tok.padId ?? null,
          adds_bos: tok.addsBos,
          source: tok.source,
        }),
      );
    } else if (bool(args, 'ids')) {
      console.log(ids.join(' '));
    } else {
      const w = Math.max(...ids.map((i) => String(i).length), 2);
      ids.forEach((id, i) =>
        console.log(`${String(id).padStart(w)}  ${JSON.stringify(tokens[i])}${tok.isSpecial(id) ? '  (special)' : ''}`),
      );
      console.log(`${ids.length} tokens (vocab ${tok.vocabSize}, ${tok.source})`);
    }
    return 0;
  },
};
