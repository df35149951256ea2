// RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF, newlines inside quotes) returning rows with the line
// each row starts on, so importers can name file:line in their errors.
import { MedloraError } from '../../util/errors.js';

export interface CsvRow {
  line: number;
  cells: string[];
}

export function parseCsv(text: string, file: string, sep = ','): CsvRow[] {
  const rows: CsvRow[] = [];
  let cells: string[] = [];
  let cell = '';
  let line = 1;
  let rowLine = 1;
  let i = 0;
  let quoted = false;
  let started = false; // a row has content
  const endRow = (): void => {
    cells.push(cell);
    if (started || cells.length > 1 || cell !== '') rows.push({ line: rowLine, cells });
    cells = [];
    cell = '';
    started = false;
  };
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          cell += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        const n = text[i];
        if (n !== undefined && n !== sep && n !== '\n' && n !== '\r')
          throw new MedloraError(
            `${file}:${line}: text after a closing quote (expected ${JSON.stringify(sep)} or end of line)`,
          );
        continue;
      }
      if (c === '\n') line++;
      cell += c;
      i++;
      continue;
    }
    if (c === '"' && cell === '') {
      quoted = true;
      started = true;
      i++;
      continue;
    }
    if (c === sep) {
      cells.push(cell);
      cell = '';
      started = true;
      i++;
      continue;
    }
    if (c === '\r' && text[i + 1] === '\n') {
      i++;
      continue;
    }
    if (c === '\n') {
      endRow();
      line++;
      rowLine = line;
      i++;
      continue;
    }
    cell += c;
    started = true;
    i++;
  }
  if (quoted) throw new MedloraError(`${file}:${rowLine}: unterminated quoted field`);
  if (started || cell !== '' || cells.length) endRow();
  return rows;
}

/** Rows as objects keyed by the header; every row must have the header's number of cells. */
export function csvObjects(
  text: string,
  file: string,
  required: string[],
): Array<{ line: number; get: (k: string) => string }> {
  const rows = parseCsv(text, file);
  if (rows.length === 0) throw new MedloraError(`${file}: is empty (expected a CSV header line)`);
  const header = rows[0]!.cells.map((h) => h.trim());
  for (const k of required) {
    if (!header.includes(k))
      throw new MedloraError(`${file}:1: missing column "${k}" (header has: ${header.join(', ')})`);
  }
  const idx = new Map(header.map((h, i) => [h, i]));
  return rows.slice(1).map((r) => {
    if (r.cells.length !== header.length) {
      throw new MedloraError(
        `${file}:${r.line}: ${r.cells.length} fields, expected ${header.length} (${header.join(', ')})`,
      );
    }
    return { line: r.line, get: (k: string) => r.cells[idx.get(k)!]! };
  });
}
