// The serve layer: the HTTP API and web page over one loaded extractor (re-exports only).
export { createServer, type ServeOptions, type ServeHandle, type ServeStats, type ServedResult, type RequestLog } from './server.js';
export { taskInfos, RESULT_SCHEMAS, ENTITY_ROLES, type TaskInfo } from './tasks.js';
export { BatchQueue } from './queue.js';
export { HttpError } from './http-error.js';
