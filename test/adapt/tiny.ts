// Tiny stand-ins for the model engineer's layers (Linear [out, in], GPT-2 Conv1D [in, out]) and a small model tree
// named like Hugging Face checkpoints, for LoRA / merge / NF4 unit tests that must not depend on a real architecture.
import { linear, randn, scope, type DType, type Tensor } from '../../src/tensor/index.js';
import { Module, ModuleList, type LinearLike } from '../../src/model/module.js';

export class TinyLinear extends Module implements LinearLike {
  declare readonly weight: Tensor;
  declare readonly bias: Tensor | undefined;
  readonly fanInFanOut = false;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    o: { bias?: boolean; dtype?: DType; weight?: Tensor } = {},
  ) {
    super();
    this.param(
      'weight',
      o.weight ??
        scope(() =>
          randn([outFeatures, inFeatures])
            .mul(0.2)
            .to(o.dtype ?? 'f32'),
        ),
    );
    if (o.bias)
      this.param(
        'bias',
        scope(() =>
          randn([outFeatures])
            .mul(0.1)
            .to(o.dtype ?? 'f32'),
        ),
      );
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias ?? null);
  }
}

/** GPT-2's Conv1D: y = x @ W + b with W stored [in, out]. */
export class TinyConv1D extends Module implements LinearLike {
  declare readonly weight: Tensor;
  declare readonly bias: Tensor;
  readonly fanInFanOut = true;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
  ) {
    super();
    this.param(
      'weight',
      scope(() => randn([inFeatures, outFeatures]).mul(0.2)),
    );
    this.param(
      'bias',
      scope(() => randn([outFeatures]).mul(0.1)),
    );
  }
  forward(x: Tensor): Tensor {
    return scope(() => x.matmul(this.weight).add(this.bias));
  }
}

class Attn extends Module {
  declare readonly q_proj: LinearLike;
  declare readonly v_proj: LinearLike;
  constructor(d: number, dtype: DType) {
    super();
    this.module('q_proj', new TinyLinear(d, d, { dtype }));
    this.module('v_proj', new TinyLinear(d, d, { bias: true, dtype }));
  }
}

class Mlp extends Module {
  declare readonly c_fc: LinearLike;
  declare readonly down_proj: LinearLike;
  constructor(d: number, dtype: DType) {
    super();
    this.module('c_fc', dtype === 'f32' ? new TinyConv1D(d, 2 * d) : new TinyLinear(d, 2 * d, { dtype }));
    this.module('down_proj', new TinyLinear(2 * d, d, { dtype }));
  }
}

class Block extends Module {
  declare readonly self_attn: Attn;
  declare readonly mlp: Mlp;
  constructor(d: number, dtype: DType) {
    super();
    this.module('self_attn', new Attn(d, dtype));
    this.module('mlp', new Mlp(d, dtype));
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      const h = x.add(this.self_attn.v_proj.forward(this.self_attn.q_proj.forward(x).silu()));
      return h.add(this.mlp.down_proj.forward(this.mlp.c_fc.forward(h).tanh()));
    });
  }
}

/** model.layers.{i}.self_attn.{q,v}_proj, model.layers.{i}.mlp.{c_fc (Conv1D when f32), down_proj}, lm_head. */
export class TinyModel extends Module {
  declare readonly model: Module & { layers: ModuleList<Block> };
  declare readonly lm_head: LinearLike;
  constructor(
    readonly d = 8,
    readonly vocab = 11,
    nLayers = 2,
    dtype: DType = 'f32',
  ) {
    super();
    const inner = new (class extends Module {
      constructor() {
        super();
        this.module('layers', new ModuleList(Array.from({ length: nLayers }, () => new Block(d, dtype))));
      }
    })();
    this.module('model', inner);
    this.module('lm_head', new TinyLinear(d, vocab, { dtype }));
  }
  forward(x: Tensor): Tensor {
    return scope(() => {
      let h = x;
      for (const b of this.model.layers) h = b.forward(h);
      return this.lm_head.forward(h);
    });
  }
}
