// The eval library in one import (what `medlora eval`, extract, serve, the trainer hook and the demo use), split by job:
// generate-answers.ts (settings, prompts, batched constrained generation), evaluate.ts (generate + parse + score + loss),
// train-hook.ts (the trainer's eval_generate_steps evaluator) and eval-outputs.ts (report files and text).
export * from './generate-answers.js';
export * from './evaluate.js';
export * from './train-hook.js';
export * from './eval-outputs.js';
