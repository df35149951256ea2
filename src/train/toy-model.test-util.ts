// A tiny causal "LM" for trainer tests: logits = dropout(embedding(ids)) @ W^T + b, with the embedding frozen and W, b
// trainable. Small enough that its loss and gradients can be written out by hand in a test. Like the real models it
// returns logits [N, vocab] at `outputPositions` (flat b*T+t indices) when asked.
import { dropout, embedding, linear, randn, zeros, type Tensor } from '../tensor/index.js';
import { Module } from '../model/module.js';

export class ToyLM extends Module {
  declare emb: Tensor;
  declare weight: Tensor;
  declare bias: Tensor;
  gradientCheckpointing = false;
  constructor(
    readonly vocab: number,
    readonly dim: number,
    readonly p = 0,
  ) {
    super();
    this.param('emb', randn([vocab, dim]));
    this.param('weight', randn([vocab, dim]).mul(0.1).requiresGrad_(true));
    this.param('bias', zeros([vocab]).requiresGrad_(true));
  }
  forward(ids: Tensor, opts: { outputPositions?: Tensor } = {}): Tensor {
    let h = embedding(this.emb, ids);
    if (opts.outputPositions) h = h.reshape([-1, this.dim]).indexSelect(0, opts.outputPositions);
    return linear(this.p > 0 ? dropout(h, this.p, this.training) : h, this.weight, this.bias);
  }
}
