// The tensor facade: everything other parts of medlora use to compute (re-exports only).
// Conventions: every op returns a new Tensor that owns native memory. Free it with dispose(), or run the work inside
// scope(() => ...) (everything created inside is disposed except what is returned or keep()-ed), or `using`. The GC
// frees forgotten tensors too (native bytes are reported to V8), but training loops should use scope() for
// predictable memory. `t.grad` returns a new handle on each read. Engine errors are Errors with engine: true and a
// message "medlora engine: <op>: <what> (arguments: <dtypes and shapes>)".
export * from './dtype.js';
export * from './tensor.js';
export { scope, keep, scopeDepth } from './scope.js';
export * from './autograd.js';
export * from './optim.js';
export * from './engine.js';
export type { Handle } from './native.js';
export * from './gradcheck.js';
export * from './perf.js';
export { physicalCores, reuseLargeBlocks } from './native.js';
export * from './cpu.js';
export * from './device.js';
