// The serve layer: the HTTP API (medlora's /v1/extract and the OpenAI-compatible routes) and web page over a base
// model and its adapters (re-exports only).
export {
  createServer,
  type ServeOptions,
  type ServeHandle,
  type ServeStats,
  type ServedResult,
  type RequestLog,
  type ServedModel,
} from './server.js';
export { taskInfos, RESULT_SCHEMAS, ENTITY_ROLES, type TaskInfo } from './tasks.js';
export { BatchQueue } from './queue.js';
export { HttpError } from './http-error.js';
