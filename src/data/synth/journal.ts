// The synth run's append-only journal: one JSON line per answered request, keyed by a hash of everything that
// decides the request (so a resumed run skips exactly the requests already answered, and a changed setting is a
// new request). A line cut short by a kill is ignored (its request is simply sent again).
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface JournalEntry {
  key: string;
  drug: string;
  index: number;
  seed: number;
  /** the reply's message content, as received */
  content: string;
  attempts: number;
  at: string;
}

export class Journal {
  readonly entries = new Map<string, JournalEntry>();
  /** lines that did not parse (a kill mid-write) */
  readonly torn: number = 0;

  constructor(readonly file: string) {
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true });
      return;
    }
    let torn = 0;
    const text = readFileSync(file, 'utf8');
    // a torn last line must not swallow the next entry
    if (text.length > 0 && !text.endsWith('\n')) appendFileSync(file, '\n');
    for (const line of text.split('\n')) {
      if (line.trim() === '') continue;
      try {
        const e = JSON.parse(line) as JournalEntry;
        if (typeof e.key === 'string' && typeof e.content === 'string') this.entries.set(e.key, e);
        else torn++;
      } catch {
        torn++;
      }
    }
    this.torn = torn;
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Append one entry (one write of one whole line). */
  append(e: JournalEntry): void {
    appendFileSync(this.file, `${JSON.stringify(e)}\n`);
    this.entries.set(e.key, e);
  }
}
