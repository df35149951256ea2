// The tensor facade: everything other parts of medlora use to compute (re-exports only).
export * from './dtype.js';
export * from './tensor.js';
export { scope, keep, scopeDepth } from './scope.js';
export * from './autograd.js';
export * from './optim.js';
export * from './engine.js';
export type { Handle } from './native.js';
export * from './gradcheck.js';
export * from './perf.js';
export { physicalCores } from './native.js';
