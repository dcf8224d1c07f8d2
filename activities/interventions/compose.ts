import { askForJson } from '../llm.js';
import type { Config } from '../../config/index.js';

/** The placeholder the first name goes into, locally, at delivery. Nothing personal is ever in a prompt. */
export const FIRST_NAME = '{{first_name}}';

/** Everything a message is written from: pseudonymous and minimal (no key, no name, no free text of the student). */
export interface MessageContext {
  kind: 'nudge' | 'study_plan' | 'mentor_alert';
  course: string | null;
  /** Risk factors in plain words, e.g. "low practice events over the last 14 days". */
  factors: string[];
  /** The segment's plain-language description. */
  segment: string | null;
}

export interface Composed {
  subject: string;
  /** With `{{first_name}}` for student messages; filled in by the channel at delivery. */
  body: string;
  source: 'llm' | 'template';
  /** Why the template was used although a key is set. */
  fallbackReason?: string;
}

const SUBJECTS: Record<MessageContext['kind'], string> = {
  nudge: 'A quick hello from your course',
  study_plan: 'A study plan for the week ahead',
  mentor_alert: 'A student may welcome a check-in',
};

/** A factor without its window and parenthetical detail: "low practice events over the last 14 days" → "low practice events". */
function plain(factor: string): string {
  return factor
    .replace(/ over the last \d+ days$/, '')
    .replace(/\s*\([^)]*\)/g, '')
    .trim();
}

/** A concrete, kind next step for the family of a factor (practice, video, forum, assignments, regular study). */
function suggestion(factor: string): string {
  const f = factor.toLowerCase();
  if (/practice|problem|accuracy|attempt/.test(f)) return 'a few practice problems';
  if (/video|watch|lecture/.test(f)) return 'the next lecture video';
  if (/forum|post|word/.test(f)) return 'a question or a reply in the forum';
  if (/submission|assessment|score|late|due/.test(f)) return 'the next assignment, a little ahead of its due date';
  return 'short study sessions on a few more days of the week';
}

/** The deterministic composer: used without a key and whenever the language model's answer fails a check. */
export function templateMessage(ctx: MessageContext): Composed {
  const course = ctx.course ? ` in ${ctx.course}` : '';
  const steps = [...new Set(ctx.factors.map(suggestion))].slice(0, 2);
  const focus = steps.length ? ` A good place to start: ${steps.join(' and ')}.` : '';
  const seen = [...new Set(ctx.factors.map(plain))].slice(0, 3);
  const body =
    ctx.kind === 'mentor_alert'
      ? `A student${course} may welcome a personal check-in.` +
        (seen.length ? ` What stands out in their recent activity: ${seen.join('; ')}.` : '') +
        ' Please reach out with an offer of support.'
      : ctx.kind === 'study_plan'
        ? `Hi ${FIRST_NAME}, here is a small plan for the week${course}: two short practice sessions of about ` +
          `20 minutes, the next lecture, and one question to bring to the forum.${focus} ` +
          'Small steps add up, and your teachers are glad to help.'
        : `Hi ${FIRST_NAME}, we noticed you have not been around much${course} lately. Everything is still here for ` +
          `you whenever you are ready.${focus} If something is getting in the way, your teachers are happy to help.`;
  return { subject: SUBJECTS[ctx.kind], body, source: 'template' };
}

const TONE = /\b(fail\w*|lazy|stupid|risk\w*|warning|urgent|drop ?out\w*|algorithm\w*|predict\w*|score\w*|model)\b/i;
const CONTACT = /(https?:\/\/|www\.|[\w.+-]+@[\w-]+\.[\w.]+|\+?\d[\d\s().-]{6,}\d)/i;
const PLACEHOLDER = /\{\{(?!first_name\}\})[^}]*\}\}|\[(?:name|student|first name|your name)\]|<[a-z_ ]+>/i;

/** Why a message may not be sent, or null when it passes every check. */
export function checkMessage(
  m: { subject: string; body: string },
  ctx: MessageContext,
  maxChars: number,
): string | null {
  const body = m.body.trim();
  if (!m.subject.trim() || m.subject.length > 120) return 'subject empty or over 120 characters';
  if (body.length < 40) return 'body under 40 characters';
  if (body.length > maxChars) return `body over ${maxChars} characters`;
  if (PLACEHOLDER.test(m.subject) || PLACEHOLDER.test(body)) return 'leftover placeholder';
  const names = body.split(FIRST_NAME).length - 1;
  if (ctx.kind === 'mentor_alert' ? names > 0 : names !== 1)
    return ctx.kind === 'mentor_alert' ? 'a mentor alert names the student' : `${names} first-name placeholders`;
  if (TONE.test(m.subject) || TONE.test(body)) return `tone: "${(TONE.exec(`${m.subject} ${body}`) ?? [''])[0]}"`;
  if (CONTACT.test(body)) return 'contact details or a link in the body';
  if (/!{2,}|[A-Z]{6,}/.test(body)) return 'shouting';
  return null;
}

/**
 * Writes a message with the language model when a key is set, from the pseudonymous context only, and checks it;
 * otherwise, or when the call or a check fails, the template writes it and the reason is kept.
 */
export async function composeMessage(config: Config, ctx: MessageContext): Promise<Composed> {
  const template = templateMessage(ctx);
  if (!config.llm.apiKey) return template;
  const max = config.interventions.maxMessageChars;
  const audience =
    ctx.kind === 'mentor_alert'
      ? 'to a mentor about one of their students (do not name or address the student)'
      : `to a student, starting with "Hi ${FIRST_NAME}," (keep ${FIRST_NAME} exactly as written, once)`;
  const answer = await askForJson(config, {
    shape: 'object',
    system:
      'You write short, warm, practical messages for an online course. Encourage; never blame. Never mention ' +
      'risk, scores, predictions, failing or dropping out. No links, no contact details, no exclamation marks in a row.',
    prompt:
      `Write a ${ctx.kind.replace('_', ' ')} ${audience}, at most ${max} characters. ` +
      `Answer with JSON {"subject": "...", "body": "..."} and nothing else.\n\n` +
      JSON.stringify({ course: ctx.course, recentPattern: ctx.factors, groupDescription: ctx.segment }),
  });
  if (!answer.ok) return { ...template, fallbackReason: answer.reason };
  const parsed = (answer.value ?? {}) as { subject?: unknown; body?: unknown };
  if (typeof parsed.subject !== 'string' || typeof parsed.body !== 'string')
    return { ...template, fallbackReason: 'answer lacked a subject or body' };
  const m = { subject: parsed.subject.trim(), body: parsed.body.trim() };
  const failed = checkMessage(m, ctx, max);
  if (failed) return { ...template, fallbackReason: `check failed: ${failed}` };
  return { ...m, source: 'llm' };
}
