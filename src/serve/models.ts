// The models one server answers for: the base model under its own name and any number of adapters over it, each
// under a name picked by the request's `model` field (as vLLM's --lora-modules name=path). Each entry carries what
// its training contract says about prompting (prompt style, max length, tasks). ADAPTERS AND BATCHES: the adapters
// are models over the ONE loaded base (`medlora serve` builds them with loadAdapterShared, src/model/share.ts: the base
// weights are held once, each adapter adds its own wrappers and tensors), and the queue never mixes entries in one
// batch (the entry's name is part of the batching key), so an answer never depends on which other adapters were asked
// at the same time. Several adapters in one batch (a per-row gather of LoRA factors, as vLLM's punica kernels do) is
// not implemented: it would be a second computation of every adapted layer, to be proven equal and measured first.
import type { CausalLM } from '../model/causal-lm.js';
import type { TextTokenizer } from '../tokenize/types.js';
import type { PromptStyle } from '../data/prompt.js';
import type { StructuredTask } from '../infer/parse.js';
import { HttpError } from './http-error.js';

export interface ServedModel {
  /** the name requests use in `model` */
  name: string;
  model: CausalLM;
  tok: TextTokenizer;
  /** the adapter folder, or null for the base model */
  adapterDir: string | null;
  /** prompt style and input shortening used in training (default alpaca, none) */
  promptStyle?: PromptStyle;
  maxLength?: number;
  /** per-task instructions from the training contract (default: the built-in ones) */
  instructions?: Record<string, string>;
  /** tasks this model answers on /v1/extract (default: the server's tasks) */
  tasks?: StructuredTask[];
}

export class ModelRegistry {
  private readonly byName = new Map<string, ServedModel>();
  readonly created = Math.floor(Date.now() / 1000);

  constructor(
    models: ServedModel[],
    readonly defaultName: string,
  ) {
    for (const m of models) {
      if (!m.name) throw new HttpError(500, 'a model name must not be empty');
      if (this.byName.has(m.name)) throw new HttpError(500, `model name "${m.name}" is given twice`);
      this.byName.set(m.name, m);
    }
    if (!this.byName.has(defaultName)) throw new HttpError(500, `default model "${defaultName}" is not served`);
  }

  get all(): ServedModel[] {
    return [...this.byName.values()];
  }

  /** The entry for a request's `model` (absent: the default); 404 for an unknown name. */
  get(name: unknown, field = 'model'): ServedModel {
    if (name === undefined || name === null) return this.byName.get(this.defaultName)!;
    if (typeof name !== 'string') throw new HttpError(400, `${field}: expected a string`, field);
    const m = this.byName.get(name);
    if (!m)
      throw new HttpError(
        404,
        `${field}: the model "${name}" does not exist (served: ${[...this.byName.keys()].join(', ')})`,
        field,
        {},
        'model_not_found',
      );
    return m;
  }
}
