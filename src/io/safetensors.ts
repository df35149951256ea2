// Safetensors reader (lazy, validated) and writer (atomic), plus sharded checkpoints (model.safetensors.index.json).
// Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON {name: {dtype, shape, data_offsets}, __metadata__},
// then the data area; offsets are relative to the data area (https://github.com/huggingface/safetensors, README).
// Over ~400 lines on purpose: the reader, the atomic writer and the sharded index share the header format and its
// validation.
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MedloraError } from '../util/errors.js';
import { DTYPE_SIZE, DTYPES, isDtype, numel, type Dtype } from './dtype.js';

export { type Dtype } from './dtype.js';

/** Where a tensor lives: enough for the engine's fromFile(path, byteOffset, dtype, shape). */
export interface TensorInfo {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** the file holding it */
  file: string;
  /** absolute byte offset in that file */
  byteOffset: number;
  byteLength: number;
}

/** A tensor held in memory, as given to the writers. */
export interface TensorData {
  dtype: Dtype;
  shape: number[];
  data: Uint8Array;
}

/** A name -> tensor view over one file or several shards. */
export interface TensorSource {
  /** names in sorted order */
  names(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** the tensor's raw little-endian bytes, read from disk on demand */
  read(name: string): Uint8Array;
  readonly metadata: Record<string, string>;
  /** a short description for error messages (file or folder) */
  readonly label: string;
}

/** The reference implementation's header limit (safetensors' MAX_HEADER_SIZE = 100_000_000). */
export const MAX_HEADER_BYTES = 100_000_000;

/**
 * Reject duplicate keys anywhere in a JSON text (JSON.parse silently keeps the last one). A small scanner over the
 * text: tracks, for every open object, the keys seen so far.
 */
export function findDuplicateKey(text: string): string | undefined {
  const stack: Array<{ obj: boolean; keys: Set<string>; expectKey: boolean }> = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.obj && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string; // decodes escapes so "\u0061" == "a"
        if (top.keys.has(key)) return key;
        top.keys.add(key);
        top.expectKey = false;
      }
      i = j + 1;
      continue;
    }
    if (c === '{') stack.push({ obj: true, keys: new Set(), expectKey: true });
    else if (c === '[') stack.push({ obj: false, keys: new Set(), expectKey: false });
    else if (c === '}' || c === ']') stack.pop();
    else if (c === ',') {
      const top = stack[stack.length - 1];
      if (top?.obj) top.expectKey = true;
    }
    i++;
  }
  return undefined;
}

function nonNegInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/**
 * Validate a parsed header against the data-area size; returns entries sorted by name. `label` (the file name) is used
 * in every message.
 */
export function validateHeader(
  label: string,
  headerText: string,
  dataStart: number,
  dataSize: number,
): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(headerText);
  } catch (e) {
    throw new MedloraError(`${label}: header is not valid JSON (${(e as Error).message})`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new MedloraError(`${label}: header must be a JSON object`);
  }
  const dup = findDuplicateKey(headerText);
  if (dup !== undefined) throw new MedloraError(`${label}: header has the key '${dup}' twice`);

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  for (const [name, raw] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
        throw new MedloraError(`${label}: __metadata__ must be an object of strings`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string')
          throw new MedloraError(`${label}: __metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
        metadata[k] = v;
      }
      continue;
    }
    const where = `${label}: tensor '${name}'`;
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      throw new MedloraError(`${where}: entry must be an object {dtype, shape, data_offsets}`);
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!isDtype(e.dtype))
      throw new MedloraError(`${where}: unknown dtype ${JSON.stringify(e.dtype)} (supported: ${DTYPES.join(', ')})`);
    if (!Array.isArray(e.shape) || !e.shape.every(nonNegInt)) {
      throw new MedloraError(`${where}: shape must be a list of non-negative integers, got ${JSON.stringify(e.shape)}`);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !nonNegInt(off[0]) || !nonNegInt(off[1])) {
      throw new MedloraError(
        `${where}: data_offsets must be [begin, end] non-negative integers, got ${JSON.stringify(off)}`,
      );
    }
    const [begin, end] = off as [number, number];
    if (end < begin) throw new MedloraError(`${where}: data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataSize) {
      throw new MedloraError(
        `${where}: data_offsets [${begin}, ${end}] go past the end of the data area (${dataSize} bytes; file truncated?)`,
      );
    }
    const shape = e.shape as number[];
    const need = numel(shape) * DTYPE_SIZE[e.dtype];
    if (!Number.isSafeInteger(need)) throw new MedloraError(`${where}: shape ${JSON.stringify(shape)} is too large`);
    if (end - begin !== need) {
      throw new MedloraError(
        `${where} has ${end - begin} bytes but shape ${JSON.stringify(shape)} x ${e.dtype} needs ${need}`,
      );
    }
    tensors.set(name, { name, dtype: e.dtype, shape, file: label, byteOffset: dataStart + begin, byteLength: need });
  }
  // no two byte ranges may overlap (zero-length tensors occupy nothing)
  const byStart = [...tensors.values()].filter((t) => t.byteLength > 0).sort((a, b) => a.byteOffset - b.byteOffset);
  for (let k = 1; k < byStart.length; k++) {
    const prev = byStart[k - 1]!,
      cur = byStart[k]!;
    if (cur.byteOffset < prev.byteOffset + prev.byteLength) {
      throw new MedloraError(
        `${label}: tensors '${prev.name}' and '${cur.name}' overlap ` +
          `(data_offsets [${prev.byteOffset - dataStart}, ${prev.byteOffset - dataStart + prev.byteLength}] and ` +
          `[${cur.byteOffset - dataStart}, ${cur.byteOffset - dataStart + cur.byteLength}])`,
      );
    }
  }
  return { tensors: new Map([...tensors].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))), metadata };
}

function readExactly(fd: number, path: string, position: number, length: number, what: string): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    // chunked: a single readSync is limited to ~2 GiB
    const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), position + done);
    if (n === 0) throw new MedloraError(`${path}: unexpected end of file while reading ${what}`);
    done += n;
  }
  return out;
}

/** One .safetensors file: header parsed and validated at open, tensor data read on demand. */
export class SafetensorsFile implements TensorSource {
  private constructor(
    readonly path: string,
    private readonly tensors: Map<string, TensorInfo>,
    readonly metadata: Record<string, string>,
    readonly fileSize: number,
  ) {}

  get label(): string {
    return this.path;
  }

  static open(path: string): SafetensorsFile {
    if (!existsSync(path)) throw new MedloraError(`${path}: file not found`);
    const fd = openSync(path, 'r');
    try {
      const size = fstatSync(fd).size;
      if (size < 8)
        throw new MedloraError(`${path}: only ${size} bytes; a safetensors file starts with an 8-byte header length`);
      const lenBytes = readExactly(fd, path, 0, 8, 'the header length');
      const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
      if (n > BigInt(MAX_HEADER_BYTES)) {
        throw new MedloraError(
          `${path}: header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`,
        );
      }
      const headerLen = Number(n);
      if (8 + headerLen > size) {
        throw new MedloraError(
          `${path}: header length ${headerLen} goes past the end of the file (${size} bytes; truncated or not safetensors)`,
        );
      }
      const headerBytes = readExactly(fd, path, 8, headerLen, 'the header');
      let text: string;
      try {
        text = new TextDecoder('utf-8', { fatal: true }).decode(headerBytes);
      } catch {
        throw new MedloraError(`${path}: header is not valid UTF-8`);
      }
      const { tensors, metadata } = validateHeader(path, text, 8 + headerLen, size - 8 - headerLen);
      return new SafetensorsFile(path, tensors, metadata, size);
    } finally {
      closeSync(fd);
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new MedloraError(`${this.path}: no tensor named '${name}'${suggest(name, this.names())}`);
    return t;
  }

  read(name: string): Uint8Array {
    const t = this.info(name);
    const fd = openSync(this.path, 'r');
    try {
      return readExactly(fd, this.path, t.byteOffset, t.byteLength, `tensor '${name}'`);
    } finally {
      closeSync(fd);
    }
  }
}

/** " (did you mean ...?)" for a near-miss name: same suffix after the first differing dot segment. */
function suggest(name: string, names: string[]): string {
  const tail = name.split('.').slice(-2).join('.');
  const close = names.filter((n) => n.endsWith(tail)).slice(0, 3);
  return close.length ? ` (similar: ${close.join(', ')})` : ` (${names.length} tensors in the file)`;
}

/** A name -> shard view over several safetensors files. */
class ShardedCheckpoint implements TensorSource {
  constructor(
    readonly label: string,
    private readonly byName: Map<string, SafetensorsFile>,
    readonly metadata: Record<string, string>,
  ) {}
  names(): string[] {
    return [...this.byName.keys()].sort();
  }
  has(name: string): boolean {
    return this.byName.has(name);
  }
  info(name: string): TensorInfo {
    const f = this.byName.get(name);
    if (!f) throw new MedloraError(`${this.label}: no tensor named '${name}'${suggest(name, this.names())}`);
    return f.info(name);
  }
  read(name: string): Uint8Array {
    this.info(name);
    return this.byName.get(name)!.read(name);
  }
}

export const SINGLE_FILE = 'model.safetensors';
export const INDEX_FILE = 'model.safetensors.index.json';

/**
 * Open a checkpoint folder (model.safetensors, or model.safetensors.index.json + its shards) or a .safetensors file.
 */
export function openCheckpoint(pathOrDir: string): TensorSource {
  if (pathOrDir.endsWith('.safetensors')) return SafetensorsFile.open(pathOrDir);
  if (pathOrDir.endsWith('.index.json')) return openIndex(pathOrDir);
  const single = join(pathOrDir, SINGLE_FILE);
  if (existsSync(single)) return SafetensorsFile.open(single);
  const index = join(pathOrDir, INDEX_FILE);
  if (existsSync(index)) return openIndex(index);
  throw new MedloraError(
    `${pathOrDir}: no ${SINGLE_FILE} or ${INDEX_FILE} (is this a Hugging Face safetensors checkpoint?)`,
  );
}

function openIndex(indexPath: string): TensorSource {
  const dir = dirname(indexPath);
  let j: unknown;
  try {
    j = JSON.parse(readFileSyncUtf8(indexPath));
  } catch (e) {
    throw new MedloraError(`${indexPath}: not valid JSON (${(e as Error).message})`);
  }
  const wm = (j as { weight_map?: unknown } | null)?.weight_map;
  if (wm === null || typeof wm !== 'object' || Array.isArray(wm))
    throw new MedloraError(`${indexPath}: missing "weight_map" object`);
  const shards = new Map<string, SafetensorsFile>();
  const byName = new Map<string, SafetensorsFile>();
  for (const [name, file] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof file !== 'string' || file.includes('/') || file.includes('\\')) {
      throw new MedloraError(
        `${indexPath}: weight_map['${name}'] must be a shard file name in the same folder, got ${JSON.stringify(file)}`,
      );
    }
    if (!shards.has(file)) {
      const p = join(dir, file);
      if (!existsSync(p)) throw new MedloraError(`${indexPath}: shard ${file} (holding '${name}') is missing`);
      shards.set(file, SafetensorsFile.open(p));
    }
    const shard = shards.get(file)!;
    if (!shard.has(name))
      throw new MedloraError(
        `${indexPath}: weight_map says '${name}' is in ${file}, but that shard has no such tensor`,
      );
  }
  // every tensor must live in exactly one shard, whatever the index says
  const metadata: Record<string, string> = {};
  for (const [file, shard] of shards) {
    for (const name of shard.names()) {
      const other = byName.get(name);
      if (other)
        throw new MedloraError(`${indexPath}: tensor '${name}' is in two shards: ${basename(other.path)} and ${file}`);
      byName.set(name, shard);
    }
    Object.assign(metadata, shard.metadata);
  }
  return new ShardedCheckpoint(indexPath, byName, metadata);
}

function readFileSyncUtf8(p: string): string {
  const fd = openSync(p, 'r');
  try {
    return new TextDecoder().decode(readExactly(fd, p, 0, fstatSync(fd).size, 'the file'));
  } finally {
    closeSync(fd);
  }
}

/** Check a tensor given to a writer; errors name it. */
function checkTensor(label: string, name: string, t: TensorData): void {
  if (name === '__metadata__')
    throw new MedloraError(`${label}: '__metadata__' is reserved and cannot be a tensor name`);
  if (!isDtype(t.dtype))
    throw new MedloraError(`${label}: tensor '${name}' has unknown dtype ${JSON.stringify(t.dtype)}`);
  if (!Array.isArray(t.shape) || !t.shape.every(nonNegInt))
    throw new MedloraError(`${label}: tensor '${name}' has a bad shape ${JSON.stringify(t.shape)}`);
  const need = numel(t.shape) * DTYPE_SIZE[t.dtype];
  if (!(t.data instanceof Uint8Array) || t.data.byteLength !== need) {
    throw new MedloraError(
      `${label}: tensor '${name}' has ${t.data?.byteLength} bytes but shape ${JSON.stringify(t.shape)} x ${t.dtype} needs ${need}`,
    );
  }
}

/** The header bytes for tensors laid out in sorted-name order; padded with spaces to 8-byte alignment. */
export function buildHeader(
  tensors: Record<string, TensorData>,
  metadata?: Record<string, string>,
): { header: Uint8Array; order: string[] } {
  const order = Object.keys(tensors).sort();
  const obj: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new MedloraError(`metadata '${k}' must be a string`);
    obj.__metadata__ = metadata;
  }
  let off = 0;
  for (const name of order) {
    const t = tensors[name]!;
    obj[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    off += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(obj));
  // the reference implementation pads the JSON with spaces so the data area starts 8-byte aligned
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const header = new Uint8Array(8 + padded).fill(0x20);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, order };
}

/** Write `parts` to `path` atomically: a temp file in the same folder, fsync, rename over the target. */
export function writeFileAtomic(path: string, parts: Iterable<Uint8Array>): void {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fd = openSync(tmp, 'w');
  try {
    for (const p of parts) {
      let done = 0;
      while (done < p.byteLength) done += writeSync(fd, p, done, Math.min(p.byteLength - done, 1 << 30));
    }
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, path);
  } catch (e) {
    try {
      closeSync(fd);
    } catch {
      /* already closed */
    }
    rmSync(tmp, { force: true });
    throw e;
  }
  // make the rename itself durable (best effort: not every platform can fsync a directory)
  try {
    const dfd = openSync(dir, 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* ignore */
  }
}

/** Write one .safetensors file (keys sorted, header space-padded to 8 bytes), atomically. */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorData>,
  metadata?: Record<string, string>,
): void {
  for (const [name, t] of Object.entries(tensors)) checkTensor(path, name, t);
  const { header, order } = buildHeader(tensors, metadata);
  writeFileAtomic(path, [header, ...order.map((n) => tensors[n]!.data)]);
}

/** HF's shard naming: model-00001-of-00003.safetensors. */
export function shardFileName(i: number, n: number): string {
  return `model-${String(i).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
}

/**
 * Split tensors (sorted by name) greedily into shards of at most maxShardBytes of data (a tensor larger than that gets
 * a shard of its own), write each shard and then model.safetensors.index.json (last, so a reader never sees an index
 * pointing at missing shards). Returns the shard file names.
 */
export function writeSharded(
  dir: string,
  tensors: Record<string, TensorData>,
  maxShardBytes: number,
  metadata?: Record<string, string>,
): string[] {
  if (!(maxShardBytes > 0))
    throw new MedloraError(`writeSharded: maxShardBytes must be positive, got ${maxShardBytes}`);
  for (const [name, t] of Object.entries(tensors)) checkTensor(dir, name, t);
  const groups: string[][] = [];
  let cur: string[] = [],
    curBytes = 0;
  for (const name of Object.keys(tensors).sort()) {
    const b = tensors[name]!.data.byteLength;
    if (cur.length && curBytes + b > maxShardBytes) {
      groups.push(cur);
      cur = [];
      curBytes = 0;
    }
    cur.push(name);
    curBytes += b;
  }
  if (cur.length || groups.length === 0) groups.push(cur);
  const files = groups.map((_, i) => shardFileName(i + 1, groups.length));
  const weightMap: Record<string, string> = {};
  let total = 0;
  groups.forEach((g, i) => {
    const part: Record<string, TensorData> = {};
    for (const n of g) {
      part[n] = tensors[n]!;
      weightMap[n] = files[i]!;
      total += tensors[n]!.data.byteLength;
    }
    writeSafetensors(join(dir, files[i]!), part, metadata);
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  writeFileAtomic(join(dir, INDEX_FILE), [new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`)]);
  return files;
}

/** Read every tensor of a source into memory (for small checkpoints, tests and tools). */
export function readAll(src: TensorSource): Record<string, TensorData> {
  const out: Record<string, TensorData> = {};
  for (const n of src.names()) {
    const i = src.info(n);
    out[n] = { dtype: i.dtype, shape: i.shape, data: src.read(n) };
  }
  return out;
}
