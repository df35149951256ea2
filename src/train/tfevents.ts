// TensorBoard event files written (and read back) by medlora itself: the TFRecord framing and the few protobuf fields
// of Event / Summary that scalars and text need. Sources: tensorflow/core/util/event.proto (Event: wall_time = 1
// double, step = 2 int64, file_version = 3 string, summary = 5), tensorflow/core/framework/summary.proto (Summary:
// value = 1; Value: tag = 1, simple_value = 2 float, metadata = 9, tensor = 8; SummaryMetadata: plugin_data = 1 with
// plugin_name = 1, content = 2), tensor.proto (dtype = 1, tensor_shape = 2, string_val = 8; DT_STRING = 7),
// tensor_shape.proto (dim = 2, Dim.size = 1); tensorflow/core/lib/io/record_writer.cc (record = uint64 LE length,
// masked CRC32C of those 8 bytes, data, masked CRC32C of data; mask = rotr15(crc) + 0xa282ead8); the text plugin's
// summary as torch.utils.tensorboard.summary.text writes it; file names as tensorboard's EventFileWriter.
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { MedloraError } from '../util/errors.js';
import { isEval, isGenerateEval, type MetricRecord } from './metrics.js';

// ---------------------------------------------------------------------------------------------------------------
// CRC32C (Castagnoli, reflected polynomial 0x82F63B78) and TFRecord framing

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TensorFlow's masked CRC (crc32c.h Mask): rotate right by 15 bits and add a constant. */
export function maskedCrc32c(buf: Uint8Array): number {
  const c = crc32c(buf);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord: uint64 LE length, masked CRC of the length bytes, the data, masked CRC of the data. */
export function frameRecord(data: Uint8Array): Buffer {
  const out = Buffer.alloc(12 + data.length + 4);
  out.writeBigUInt64LE(BigInt(data.length), 0);
  out.writeUInt32LE(maskedCrc32c(out.subarray(0, 8)), 8);
  out.set(data, 12);
  out.writeUInt32LE(maskedCrc32c(data), 12 + data.length);
  return out;
}

/** Split a file into record payloads, checking both CRCs of every record (an error names the file and offset). */
export function readRecords(buf: Uint8Array, file = 'events file'): Uint8Array[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Uint8Array[] = [];
  let o = 0;
  while (o < b.length) {
    if (o + 12 > b.length) throw new MedloraError(`${file}: truncated record header at byte ${o}`);
    const len = Number(b.readBigUInt64LE(o));
    if (b.readUInt32LE(o + 8) !== maskedCrc32c(b.subarray(o, o + 8)))
      throw new MedloraError(`${file}: bad length CRC at byte ${o}`);
    if (o + 12 + len + 4 > b.length) throw new MedloraError(`${file}: truncated record at byte ${o}`);
    const data = b.subarray(o + 12, o + 12 + len);
    if (b.readUInt32LE(o + 12 + len) !== maskedCrc32c(data))
      throw new MedloraError(`${file}: bad data CRC at byte ${o}`);
    out.push(data);
    o += 12 + len + 4;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// protobuf: the encoder for the fields above, and a small decoder

function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return out;
}

const key = (field: number, wire: number): number[] => varint((field << 3) | wire);
const lenField = (field: number, bytes: Uint8Array | number[]): number[] => [
  ...key(field, 2),
  ...varint(bytes.length),
  ...bytes,
];
const strField = (field: number, s: string): number[] => lenField(field, [...Buffer.from(s, 'utf8')]);

function doubleField(field: number, v: number): number[] {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return [...key(field, 1), ...b];
}

function floatField(field: number, v: number): number[] {
  const b = Buffer.alloc(4);
  b.writeFloatLE(v);
  return [...key(field, 5), ...b];
}

/** Summary.Value with a float simple_value (what SummaryWriter.add_scalar writes). */
function scalarValue(tag: string, v: number): number[] {
  return [...strField(1, tag), ...floatField(2, v)];
}

/** Summary.Value for the text plugin: metadata.plugin_data.plugin_name "text", a DT_STRING tensor of shape [1]. */
function textValue(tag: string, text: string): number[] {
  const metadata = lenField(1, strField(1, 'text'));
  const tensor = [
    ...key(1, 0),
    ...varint(7),
    ...lenField(2, lenField(2, [...key(1, 0), ...varint(1)])),
    ...lenField(8, [...Buffer.from(text, 'utf8')]),
  ];
  return [...strField(1, tag), ...lenField(9, metadata), ...lenField(8, tensor)];
}

function eventBytes(wallTime: number, step: number, rest: number[]): Uint8Array {
  return Uint8Array.from([
    ...doubleField(1, wallTime),
    ...(step !== 0 ? [...key(2, 0), ...varint(step)] : []),
    ...rest,
  ]);
}

interface Field {
  no: number;
  wire: number;
  value: bigint | Uint8Array;
}

function decodeFields(b: Uint8Array): Field[] {
  const out: Field[] = [];
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  let o = 0;
  const readVarint = (): bigint => {
    let v = 0n,
      shift = 0n;
    for (;;) {
      if (o >= buf.length) throw new MedloraError('protobuf: truncated varint');
      const x = buf[o++]!;
      v |= BigInt(x & 0x7f) << shift;
      if (!(x & 0x80)) return v;
      shift += 7n;
    }
  };
  while (o < buf.length) {
    const k = Number(readVarint());
    const no = k >>> 3,
      wire = k & 7;
    if (wire === 0) out.push({ no, wire, value: readVarint() });
    else if (wire === 1) {
      out.push({ no, wire, value: buf.subarray(o, o + 8) });
      o += 8;
    } else if (wire === 5) {
      out.push({ no, wire, value: buf.subarray(o, o + 4) });
      o += 4;
    } else if (wire === 2) {
      const n = Number(readVarint());
      out.push({ no, wire, value: buf.subarray(o, o + n) });
      o += n;
    } else throw new MedloraError(`protobuf: unsupported wire type ${wire}`);
  }
  return out;
}

const bytesOf = (f: Field): Uint8Array => f.value as Uint8Array;
const str = (f: Field): string => Buffer.from(bytesOf(f)).toString('utf8');

/** One decoded event: what medlora writes and what torch's SummaryWriter writes for scalars and text. */
export interface DecodedEvent {
  wallTime: number;
  step: number;
  fileVersion?: string;
  values: Array<{
    tag: string;
    simpleValue?: number;
    pluginName?: string;
    dtype?: number;
    strings?: string[];
    floats?: number[];
  }>;
}

export function decodeEvent(b: Uint8Array): DecodedEvent {
  const e: DecodedEvent = { wallTime: 0, step: 0, values: [] };
  for (const f of decodeFields(b)) {
    if (f.no === 1 && f.wire === 1) e.wallTime = Buffer.from(bytesOf(f)).readDoubleLE(0);
    else if (f.no === 2 && f.wire === 0) e.step = Number(BigInt.asIntN(64, f.value as bigint));
    else if (f.no === 3 && f.wire === 2) e.fileVersion = str(f);
    else if (f.no === 5 && f.wire === 2) {
      for (const vf of decodeFields(bytesOf(f))) {
        if (vf.no !== 1 || vf.wire !== 2) continue;
        const v: DecodedEvent['values'][number] = { tag: '' };
        for (const x of decodeFields(bytesOf(vf))) {
          if (x.no === 1) v.tag = str(x);
          else if (x.no === 2 && x.wire === 5) v.simpleValue = Buffer.from(bytesOf(x)).readFloatLE(0);
          else if (x.no === 9) {
            for (const pd of decodeFields(bytesOf(x)))
              if (pd.no === 1) for (const pn of decodeFields(bytesOf(pd))) if (pn.no === 1) v.pluginName = str(pn);
          } else if (x.no === 8) {
            for (const t of decodeFields(bytesOf(x))) {
              if (t.no === 1 && t.wire === 0) v.dtype = Number(t.value);
              else if (t.no === 8) (v.strings ??= []).push(str(t));
              else if (t.no === 5 && t.wire === 2) {
                const fb = Buffer.from(bytesOf(t));
                v.floats = Array.from({ length: fb.length / 4 }, (_, i) => fb.readFloatLE(4 * i));
              }
            }
          }
        }
        e.values.push(v);
      }
    }
  }
  return e;
}

/** Every event of a file, CRC-checked. */
export function readEventsFile(file: string): DecodedEvent[] {
  return readRecords(readFileSync(file), file).map(decodeEvent);
}

// ---------------------------------------------------------------------------------------------------------------
// the writer

/** HF's default logging dir below output_dir: runs/<Mon><DD>_<HH>-<MM>-<SS>_<host> (transformers default_logdir). */
export function defaultLogDir(outputDir: string, now = new Date(), host = hostname()): string {
  const mon = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][now.getMonth()]!;
  const p = (n: number): string => String(n).padStart(2, '0');
  return join(
    outputDir,
    'runs',
    `${mon}${p(now.getDate())}_${p(now.getHours())}-${p(now.getMinutes())}-${p(now.getSeconds())}_${host}`,
  );
}

let uid = 0;

/**
 * Appends events to one file, events.out.tfevents.<10-digit seconds>.<host>.<pid>.<n> (tensorboard's EventFileWriter
 * name), each record flushed as it is written so a killed run keeps what it logged. The first record is the
 * file_version event "brain.Event:2".
 */
export class TfEventsWriter {
  readonly file: string;

  constructor(
    readonly logDir: string,
    o: { now?: number; host?: string } = {},
  ) {
    mkdirSync(logDir, { recursive: true });
    const now = o.now ?? Date.now() / 1000;
    this.file = join(
      logDir,
      `events.out.tfevents.${String(Math.floor(now)).padStart(10, '0')}.${o.host ?? hostname()}.${process.pid}.${uid++}`,
    );
    this.write(eventBytes(now, 0, strField(3, 'brain.Event:2')));
  }

  private write(event: Uint8Array): void {
    appendFileSync(this.file, frameRecord(event));
  }

  /** A scalar (stored as float32, as TensorBoard's simple_value). */
  addScalar(tag: string, value: number, step: number, wallTime = Date.now() / 1000): void {
    this.write(eventBytes(wallTime, step, lenField(5, lenField(1, scalarValue(tag, value)))));
  }

  /** Several scalars of one step in one event. */
  addScalars(values: ReadonlyArray<readonly [string, number]>, step: number, wallTime = Date.now() / 1000): void {
    if (!values.length) return;
    this.write(
      eventBytes(
        wallTime,
        step,
        lenField(
          5,
          values.flatMap(([t, v]) => lenField(1, scalarValue(t, v))),
        ),
      ),
    );
  }

  /** Text for the text plugin, under "<tag>/text_summary" as torch's SummaryWriter.add_text names it. */
  addText(tag: string, text: string, step = 0, wallTime = Date.now() / 1000): void {
    this.write(eventBytes(wallTime, step, lenField(5, lenField(1, textValue(`${tag}/text_summary`, text)))));
  }
}

/**
 * The scalars of one metrics.jsonl record under HF's TensorBoard tags (integration_utils.rewrite_logs: eval_x ->
 * eval/x, everything else -> train/x): train/loss, train/learning_rate, train/grad_norm, train/epoch,
 * train/tokens_per_second, train/tokens; eval/loss, eval/perplexity, eval/tokens; eval/gen_f1, eval/gen_precision,
 * eval/gen_recall, eval/gen_parse_rate, eval/gen_samples, eval/gen_f1/<task>. The epoch is written with training
 * records only, so every (tag, step) pair appears once.
 */
export function tensorboardScalars(r: MetricRecord): Array<[string, number]> {
  const out: Array<[string, number]> = [];
  const rec = r as unknown as Record<string, unknown>;
  if (isEval(r) || isGenerateEval(r)) {
    for (const [k, v] of Object.entries(rec)) {
      if (k === 'step' || k === 'epoch' || typeof v !== 'number') continue;
      out.push([k.startsWith('eval_') ? `eval/${k.slice(5)}` : `eval/${k}`, v]);
    }
  } else {
    for (const [k, v] of Object.entries(rec)) if (k !== 'step' && typeof v === 'number') out.push([`train/${k}`, v]);
  }
  return out;
}
