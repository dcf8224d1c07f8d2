import { askForJson } from '../llm.js';
import type { Config } from '../../config/index.js';

export interface SegmentSummary {
  size: number;
  /** Mean of each profile feature in the segment and over everyone, e.g. { forum_posts_28d: [4.1, 0.9] }. */
  means: Record<string, [number, number]>;
  /** The template's description, used when no model writes one or its answer fails a check. */
  template: string;
}

export interface Described {
  descriptions: string[];
  source: 'llm' | 'template';
  /** Why the template was used although a key is set. */
  fallbackReason?: string;
}

const MAX_WORDS = 30;

/**
 * One plain-language sentence per segment. With an API key the language model writes them from aggregates only (sizes
 * and feature means: no student, no key, no text of anyone); every answer is checked (one sentence per segment, length,
 * no placeholders or digits-only) and the template is used, with the reason, when a check or the call fails.
 */
export async function describeSegments(config: Config, segments: SegmentSummary[]): Promise<Described> {
  const template = { descriptions: segments.map((s) => s.template), source: 'template' as const };
  if (!config.llm.apiKey || !segments.length) return template;
  const table = segments
    .map(
      (s, i) =>
        `Segment ${i + 1} (${s.size} students): ` +
        Object.entries(s.means)
          .map(([f, [mine, all]]) => `${f} ${mine.toFixed(2)} (everyone ${all.toFixed(2)})`)
          .join(', '),
    )
    .join('\n');
  const answer = await askForJson(config, {
    shape: 'array',
    system:
      'You describe groups of students in an online course for their teachers, from aggregate activity only. ' +
      'Be factual and kind; describe behaviour, never ability or worth.',
    prompt:
      `Features are means over the last 28 days. Write one sentence of at most ${MAX_WORDS} words per segment ` +
      `describing how its students study compared with everyone. Answer with a JSON array of ${segments.length} strings, in order, nothing else.\n\n${table}`,
  });
  if (!answer.ok) return { ...template, fallbackReason: answer.reason };
  const parsed = answer.value;
  if (!Array.isArray(parsed) || parsed.length !== segments.length) {
    return {
      ...template,
      fallbackReason: `answer had ${Array.isArray(parsed) ? parsed.length : 0} descriptions for ${segments.length} segments`,
    };
  }
  for (const d of parsed) {
    if (typeof d !== 'string' || !d.trim()) return { ...template, fallbackReason: 'an empty description' };
    if (d.split(/\s+/).length > MAX_WORDS + 5)
      return { ...template, fallbackReason: 'a description over the length limit' };
    if (/[{}[\]<>]|\bsegment \d+\b/i.test(d))
      return { ...template, fallbackReason: 'a description with leftover markup' };
  }
  return { descriptions: (parsed as string[]).map((d) => d.trim()), source: 'llm' };
}
