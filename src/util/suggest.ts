// "Did you mean ...?" for unknown keys and options: the closest known names by edit distance, then the full list, so
// an error never shows a partial list of what is accepted.

export function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** Known names close to `name` (edit distance within a third of its length, at least 2; or containing it), best first. */
export function closest(name: string, known: readonly string[], max = 3): string[] {
  const n = name.toLowerCase();
  const limit = Math.max(2, Math.floor(n.length / 3));
  return known
    .map((k) => {
      const kl = k.toLowerCase();
      const leaf = kl.split('.').pop()!;
      const d = Math.min(editDistance(n, kl), editDistance(n, leaf));
      const sub = n.length >= 3 && (kl.includes(n) || (leaf.length >= 3 && n.includes(leaf)));
      return { k, d: sub ? Math.min(d, limit) : d };
    })
    .filter((x) => x.d <= limit)
    .sort((a, b) => a.d - b.d || a.k.localeCompare(b.k))
    .slice(0, max)
    .map((x) => x.k);
}

/**
 * " (did you mean a or b? known: x, y, z)" with every known name; `fmt` renders a name (e.g. as a flag); matches are
 * looked for among `candidates` (default: the known names).
 */
export function suggestion(
  name: string,
  known: readonly string[],
  fmt: (k: string) => string = (k) => k,
  candidates: readonly string[] = known,
): string {
  const near = closest(name, candidates);
  const all = `known: ${known.map(fmt).join(', ')}`;
  return near.length ? ` (did you mean ${near.map(fmt).join(' or ')}? ${all})` : ` (${all})`;
}
