// The eval library in one import (what `medlora eval`, the trainer hook and the demo use), split by job: evaluate.ts
// (generate + parse + score + loss; generation itself is src/infer/generate-answers.ts), train-hook.ts (the trainer's
// eval_generate_steps evaluator) and eval-outputs.ts (report files and text).
export * from './evaluate.js';
export * from './train-hook.js';
export * from './eval-outputs.js';
