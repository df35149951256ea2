// The importer registry used by `medlora data import <format>`.
import { MedloraError } from '../../util/errors.js';
import { adeCorpus } from './ade-corpus.js';
import { adeEmail } from './ade-email.js';
import { bc5cdr } from './bc5cdr.js';
import { chemprot } from './chemprot.js';
import type { Importer } from './common.js';
import { ddi2013 } from './ddi2013.js';
import { drugbankSentences } from './drugbank-sentences.js';
import { genericJsonl } from './generic.js';

export const IMPORTERS: Importer[] = [ddi2013, drugbankSentences, bc5cdr, chemprot, adeCorpus, adeEmail, genericJsonl];

export function getImporter(format: string): Importer {
  const i = IMPORTERS.find((x) => x.format === format);
  if (!i)
    throw new MedloraError(`unknown import format "${format}" (known: ${IMPORTERS.map((x) => x.format).join(', ')})`);
  return i;
}
