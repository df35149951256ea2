// The adapt layer's public surface: LoRA wrappers and their application, PEFT adapter I/O, merging, NF4 / QLoRA.
export * from './lora.js';
export * from './apply.js';
export * from './merge.js';
export * from './peft-io.js';
export * from './nf4.js';
export * from './nf4-linear.js';
export * from './merge-checkpoint.js';
export * from './dora.js';
export * from './adapter-v2.js';
export * from './methods/index.js';
