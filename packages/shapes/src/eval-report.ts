import type { EvalSection, SectionScore, SectionsReport, TypeScore } from './eval.js';
import type { QuestionType } from './questions.js';

const percent = (s: TypeScore | undefined) => (s && s.total ? `${(100 * s.accuracy).toFixed(1)} %` : '-').padStart(8);
const counts = (s: TypeScore) => `${String(s.correct).padStart(5)} / ${s.total}`;

/**
 * One section's scores as a small text table: a row per question type and the overall row; the
 * first column's header is the section's name, and follow-ups add the same questions' accuracy
 * when asked first.
 */
export function formatReport(report: SectionScore & { askedFirst?: SectionScore }, section: EvalSection | 'type' = 'type'): string {
  const first = report.askedFirst;
  const row = (name: string, s: TypeScore, asked?: TypeScore) => {
    const line = `${name.padEnd(10)}${percent(s)}  ${counts(s)}`;
    return first ? `${line.padEnd(36)}${percent(asked).padStart(14)}` : line;
  };
  const header = `${section.padEnd(10)}accuracy   correct / total${first ? '   asked first' : ''}`;
  const types = Object.keys(report.perType) as QuestionType[];
  return [header, ...types.map((t) => row(t, report.perType[t]!, first?.perType[t])), row('overall', report.overall, first?.overall)].join('\n');
}

/** Every section of a report, one table each, in the order pictures, video, follow-ups. */
export function formatSections(report: Pick<SectionsReport, 'sections'>): string {
  const tables: string[] = [];
  for (const section of ['pictures', 'video', 'followups'] as const) {
    const s = report.sections[section];
    if (s) tables.push(formatReport(s, section));
  }
  return tables.join('\n\n');
}
