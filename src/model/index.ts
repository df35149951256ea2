// The model layer's public surface: loading, the architectures, the loss, the cache (re-exports only).
export * from './module.js';
export * from './causal-lm.js';
export * from './layers.js';
export * from './decoder.js';
export * from './kv-cache.js';
export * from './llama.js';
export * from './mistral.js';
export * from './qwen2.js';
export * from './gpt2.js';
export * from './registry.js';
export * from './load.js';
export * from './loss.js';
export * from './dataset-loss.js';
export * from './stablelm.js';
export * from './share.js';
