// Progress reporting shared by every long-running command: a one-line bar on a TTY (rate and ETA), plain periodic
// lines when stderr is not a terminal, and JSON lines on stdout with --json so machines can follow along.

export interface ProgressOptions {
  total: number;
  label: string;
  /** unit shown after the rate, e.g. "tok" */
  unit?: string;
  /** emit JSON lines on stdout instead of drawing */
  json?: boolean;
  /** silence entirely */
  quiet?: boolean;
  stream?: NodeJS.WriteStream;
}

export class Progress {
  private readonly start = Date.now();
  private lastDraw = 0;
  private done = 0;
  private fields: Record<string, string | number> = {};
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;

  constructor(private readonly opts: ProgressOptions) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
  }

  /** Advance to `done` (absolute) with extra fields shown after the bar (e.g. loss). */
  update(done: number, fields: Record<string, string | number> = {}): void {
    this.done = done;
    this.fields = { ...this.fields, ...fields };
    if (this.opts.quiet) return;
    const now = Date.now();
    const final = done >= this.opts.total;
    if (this.opts.json) {
      process.stdout.write(
        `${JSON.stringify({
          event: 'progress',
          label: this.opts.label,
          done,
          total: this.opts.total,
          elapsed_s: (now - this.start) / 1000,
          ...this.fields,
        })}\n`,
      );
      return;
    }
    const interval = this.tty ? 100 : 5000;
    if (!final && now - this.lastDraw < interval) return;
    this.lastDraw = now;
    const line = this.render(now);
    if (this.tty) this.stream.write(`\r\x1b[2K${line}`);
    else this.stream.write(`${line}\n`);
  }

  tick(n = 1, fields: Record<string, string | number> = {}): void {
    this.update(this.done + n, fields);
  }

  render(now = Date.now()): string {
    const { total, label } = this.opts;
    const frac = total > 0 ? Math.min(1, this.done / total) : 0;
    const width = 24;
    const filled = Math.round(frac * width);
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    const elapsed = (now - this.start) / 1000;
    const eta = this.done > 0 ? (elapsed / this.done) * (total - this.done) : NaN;
    const extra = Object.entries(this.fields)
      .map(([k, v]) => `${k} ${typeof v === 'number' ? fmtNum(v) : v}`)
      .join('  ');
    return (
      `${label} ${bar} ${this.done}/${total}  ${fmtTime(elapsed)} elapsed, ETA ${Number.isFinite(eta) ? fmtTime(eta) : '?'}` +
      (extra ? `  ${extra}` : '')
    );
  }

  /** Finish the bar (newline on a TTY). */
  end(): void {
    if (this.opts.quiet || this.opts.json) return;
    if (this.tty) this.stream.write(`\r\x1b[2K${this.render()}\n`);
  }
}

export function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.floor(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

function fmtNum(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(4);
}
