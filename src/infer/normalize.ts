// Normalisation and filters applied before matching (relaxed mode), after the medical NER recipe's evaluation:
// lowercase, whitespace and Unicode-dash normalisation with hyphens kept, optional grounding in the source text, a
// stop-list of generic terms and a minimum length. Every switch is explicit and serialisable into the report.
// In infer because extract's spans use the same normalisation as relaxed matching (eval/match.ts).

export interface NormalizeOptions {
  /** case-fold ("Aspirin" = "aspirin") */
  lowercase: boolean;
  /** trim and collapse runs of whitespace (incl. NBSP) to one space */
  whitespace: boolean;
  /** map Unicode dashes/minus (U+2010-2015, U+2212, U+FE58, U+FE63, U+FF0D) to ASCII "-"; hyphens are kept, never removed */
  dashes: boolean;
  /** drop trailing sentence punctuation (". , ; :") and surrounding quotes */
  punctuation: boolean;
}

export interface FilterOptions {
  /** keep only predicted names that occur in the source text (after normalisation), i.e. drop hallucinations */
  grounding: boolean;
  /** predicted names equal to one of these (after normalisation) are dropped */
  stopList: string[];
  /** predicted names shorter than this many characters (after normalisation) are dropped; 0 = off */
  minLength: number;
}

/** Strict mode: only surrounding whitespace is ignored. */
export const STRICT_NORMALIZE: NormalizeOptions = {
  lowercase: false,
  whitespace: false,
  dashes: false,
  punctuation: false,
};
/** Relaxed mode defaults: everything on. */
export const RELAXED_NORMALIZE: NormalizeOptions = {
  lowercase: true,
  whitespace: true,
  dashes: true,
  punctuation: true,
};

/**
 * Generic terms a NER model tends to emit that are never useful chemical/disease/adverse-event mentions
 * (our own list, written for the recipe's stop-list filter; extend with --stop-word).
 */
export const DEFAULT_STOP_LIST: readonly string[] = [
  'drug',
  'drugs',
  'chemical',
  'chemicals',
  'compound',
  'compounds',
  'medication',
  'medications',
  'medicine',
  'agent',
  'agents',
  'disease',
  'diseases',
  'disorder',
  'disorders',
  'syndrome',
  'condition',
  'conditions',
  'symptom',
  'symptoms',
  'side effect',
  'side effects',
  'adverse event',
  'adverse events',
  'toxicity',
  'none',
  'n/a',
];

/** Filters are off by default: they change what counts, so they must be asked for. */
export const NO_FILTERS: FilterOptions = { grounding: false, stopList: [], minLength: 0 };

const DASHES = /[\u2010-\u2015\u2212\uFE58\uFE63\uFF0D]/g;

/** Normalise one string under the options (surrounding whitespace is always trimmed). */
export function normalizeText(s: string, o: NormalizeOptions): string {
  let t = s.normalize('NFC').trim();
  if (o.dashes) t = t.replace(DASHES, '-');
  if (o.whitespace) t = t.replace(/[\s\u00A0]+/g, ' ');
  if (o.punctuation) {
    t = t.replace(/[\s.,;:]+$/, '');
    const m = /^(["'`“‘])(.*)(["'`”’])$/.exec(t);
    if (m) t = m[2]!.trim();
  }
  if (o.lowercase) t = t.toLowerCase();
  return t;
}

/** Why a predicted name was filtered out, or undefined to keep it. `source` is the record's input text. */
export function filterReason(name: string, source: string, f: FilterOptions, o: NormalizeOptions): string | undefined {
  const n = normalizeText(name, o);
  if (f.minLength > 0 && [...n].length < f.minLength) return `shorter than ${f.minLength}`;
  if (f.stopList.length > 0) {
    // case-insensitive even in strict mode: "Drugs" is as generic as "drugs"
    const stop = new Set(f.stopList.map((w) => normalizeText(w, o).toLowerCase()));
    if (stop.has(n.toLowerCase())) return 'stop-list';
  }
  if (f.grounding) {
    // grounding compares in the normalised space, and always case-insensitively: "Aspirin" at a sentence start
    // grounds "aspirin"
    const hay = normalizeText(source, { ...o, punctuation: false }).toLowerCase();
    if (!hay.includes(n.toLowerCase())) return 'not in source text';
  }
  return undefined;
}
