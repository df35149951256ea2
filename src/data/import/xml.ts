// A small strict XML reader, enough for corpora like DDI 2013 (elements, attributes, text, comments, declarations;
// no DTDs, no namespaces handling). Errors name the file and line. Written for this project from the XML 1.0 spec.
import { MedloraError } from '../../util/errors.js';

export interface XmlElement {
  name: string;
  attrs: Record<string, string>;
  children: XmlElement[];
  /** concatenated character data directly inside this element */
  text: string;
  /** 1-based line of the start tag */
  line: number;
}

const NAMED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Decode the five predefined entities and numeric character references; any other reference is an error. */
export function decodeEntities(s: string, where: () => string): string {
  return s.replace(/&([^;&\s]*);?/g, (m, ref: string) => {
    if (!m.endsWith(';')) throw new MedloraError(`${where()}: bare "&" in XML text (write &amp;)`);
    if (ref in NAMED) return NAMED[ref]!;
    const num = /^#x([0-9a-fA-F]+)$/.exec(ref) ?? /^#([0-9]+)$/.exec(ref);
    if (num) {
      const cp = parseInt(num[1]!, ref.startsWith('#x') ? 16 : 10);
      if (cp > 0x10ffff) throw new MedloraError(`${where()}: character reference &${ref}; is out of range`);
      return String.fromCodePoint(cp);
    }
    throw new MedloraError(`${where()}: unknown XML entity &${ref};`);
  });
}

export function parseXml(src: string, file: string): XmlElement {
  let pos = 0;
  const lineAt = (p: number): number => {
    let n = 1;
    for (let i = src.indexOf('\n'); i >= 0 && i < p; i = src.indexOf('\n', i + 1)) n++;
    return n;
  };
  const fail = (msg: string, p = pos): never => {
    throw new MedloraError(`${file}:${lineAt(p)}: ${msg}`);
  };
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  const nameRe = /[A-Za-z_:][-A-Za-z0-9_.:]*/y;
  const attrRe = /\s+([A-Za-z_:][-A-Za-z0-9_.:]*)\s*=\s*("([^"<]*)"|'([^'<]*)')/y;
  while (pos < src.length) {
    const lt = src.indexOf('<', pos);
    const textEnd = lt < 0 ? src.length : lt;
    if (textEnd > pos) {
      const raw = src.slice(pos, textEnd);
      if (stack.length) stack[stack.length - 1]!.text += decodeEntities(raw, () => `${file}:${lineAt(pos)}`);
      else if (raw.trim() !== '') fail('text outside the root element');
      pos = textEnd;
      continue;
    }
    if (src.startsWith('<?', pos)) {
      const e = src.indexOf('?>', pos);
      if (e < 0) fail('unterminated <? ... ?>');
      pos = e + 2;
    } else if (src.startsWith('<!--', pos)) {
      const e = src.indexOf('-->', pos);
      if (e < 0) fail('unterminated comment');
      pos = e + 3;
    } else if (src.startsWith('<![CDATA[', pos)) {
      const e = src.indexOf(']]>', pos);
      if (e < 0) fail('unterminated CDATA section');
      if (stack.length) stack[stack.length - 1]!.text += src.slice(pos + 9, e);
      pos = e + 3;
    } else if (src.startsWith('<!', pos)) {
      fail('DOCTYPE / markup declarations are not supported');
    } else if (src.startsWith('</', pos)) {
      nameRe.lastIndex = pos + 2;
      const m = nameRe.exec(src);
      if (!m) fail('bad closing tag');
      const close = m![0];
      const gt = src.indexOf('>', nameRe.lastIndex);
      if (gt < 0 || src.slice(nameRe.lastIndex, gt).trim() !== '') fail(`bad closing tag </${close}`);
      const open = stack.pop();
      if (!open) fail(`closing tag </${close}> with no open element`);
      if (open!.name !== close)
        fail(`closing tag </${close}> does not match <${open!.name}> opened on line ${open!.line}`);
      pos = gt + 1;
    } else {
      const start = pos;
      nameRe.lastIndex = pos + 1;
      const m = nameRe.exec(src);
      if (!m) fail('bad start tag');
      const el: XmlElement = { name: m![0], attrs: {}, children: [], text: '', line: lineAt(start) };
      let p = nameRe.lastIndex;
      for (;;) {
        attrRe.lastIndex = p;
        const a = attrRe.exec(src);
        if (!a) break;
        if (a[1]! in el.attrs) fail(`attribute "${a[1]}" repeated in <${el.name}>`, p);
        // attribute-value normalisation (XML 1.0 section 3.3.3): literal whitespace characters become spaces
        const raw = (a[3] ?? a[4] ?? '').replace(/[\t\n\r]/g, ' ');
        el.attrs[a[1]!] = decodeEntities(raw, () => `${file}:${lineAt(p)}`);
        p = attrRe.lastIndex;
      }
      const rest = /\s*(\/?)>/y;
      rest.lastIndex = p;
      const r = rest.exec(src);
      if (!r) fail(`malformed start tag <${el.name}> (expected attributes name="value" then > or />)`, p);
      pos = rest.lastIndex;
      if (stack.length) stack[stack.length - 1]!.children.push(el);
      else if (root) fail('more than one root element');
      else root = el;
      if (r![1] !== '/') stack.push(el);
    }
  }
  if (stack.length)
    fail(`element <${stack[stack.length - 1]!.name}> opened on line ${stack[stack.length - 1]!.line} is never closed`);
  if (!root) throw new MedloraError(`${file}: no XML element found (empty file?)`);
  return root;
}
