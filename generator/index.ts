import { mkdirSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { Faker, en } from '@faker-js/faker';
import parquet from 'parquetjs-lite';
import type { Reconciliation } from '../activities/silver/engine.js';
import { addDays, assertDate } from '../lake/paths.js';
import { DEFAULT_KNOBS, type DefectKind, type GeneratorKnobs } from './knobs.js';

/** Bumped when the generator's output changes, so a stale demo drop is written anew. */
export const GENERATOR_VERSION = 6;

export interface GenerateOptions {
  out: string;
  students: number;
  days: number;
  start: string;
  seed: number;
  knobs?: GeneratorKnobs;
  /**
   * From this day index on (0 = first day), behaviour shifts: engagement falls, practice gives way to video, and forum
   * posts turn to technical trouble. Drift detection must notice; without it, none.
   */
  driftDay?: number;
  /**
   * Length of the current term in days from the start (default: the drop's days + 31, so the term outlasts the drop).
   * When the term ends inside the drop, its final results are decided on its last day, and students on course to fail
   * badly withdraw from its second half on, each with an outcome decided that day: labels a model can learn from at a
   * prediction horizon.
   */
  termDays?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Planted behaviour segments: each student follows one persona, which scales how much of each modality they use.
 * The segmentation is expected to recover them.
 */
export const PERSONAS = {
  practicer: { engagement: [0.6, 1], xapi: 1.2, caliper: 0.8, lmsCsv: 2.2, video: 0.25, forum: 0.1, assessment: 1.2 },
  watcher: { engagement: [0.5, 0.9], xapi: 0.5, caliper: 1.6, lmsCsv: 0.35, video: 3, forum: 0.2, assessment: 0.8 },
  socialiser: { engagement: [0.5, 0.9], xapi: 0.9, caliper: 1, lmsCsv: 0.7, video: 0.6, forum: 5, assessment: 1 },
  disengaged: { engagement: [0.1, 0.3], xapi: 0.4, caliper: 0.4, lmsCsv: 0.3, video: 0.3, forum: 0.2, assessment: 0.5 },
} as const;
export type Persona = keyof typeof PERSONAS;

const FORUM_PHRASES = [
  'I am stuck on problem {n}, can someone explain the second step?',
  'Great lecture today, the worked example on week {n} really helped.',
  'Does anyone want to form a study group before the quiz?',
  'I think the answer to exercise {n} uses the chain rule, not substitution.',
  'Thanks for the notes, they cleared up my confusion about the proof.',
  'Here is my summary of chapter {n} for anyone who missed class.',
  'How much time do you usually spend on the practice problems?',
  'Can we get more examples like the one in the recorded session?',
];
const DRIFT_PHRASES = [
  'The video player keeps freezing and I cannot finish lecture {n}.',
  'I cannot log in to the quiz page, it shows an error every time.',
  'My submission for assignment {n} disappeared after the upload failed.',
  'The new platform is so slow that I gave up on the exercises.',
];

/** The quarantine rule each injected defect must end under. */
export const DEFECT_RULES: Partial<Record<DefectKind | 'truncatedFiles', string>> = {
  nulls: 'missing_required',
  badTypes: 'bad_type',
  malformedTimestamps: 'malformed_timestamp',
  futureTimestamps: 'future_timestamp',
  wrongOffsets: 'invalid_offset',
  unknownStudents: 'unknown_student',
  invalidJson: 'invalid_json',
  truncatedFiles: 'invalid_json',
  outOfTerm: 'out_of_term',
};

/** What silver must report for a source and landing date: its reconciliation, as the generator planted it. */
export interface ExpectedCounts extends Omit<Reconciliation, 'source'> {
  /** Forum only: accepted texts that named a person, an email or a phone number. */
  personalData?: number;
}

export interface GenerateResult {
  out: string;
  dates: string[];
  students: number;
  files: string[];
  /** Per landing date and source: what silver must find. */
  expected: Record<string, Record<string, ExpectedCounts>>;
  term: { start: string; end: string };
  /** Current-term outcomes decided inside the drop, by roster id: outcome and decision date. */
  decided: Record<string, { outcome: string; date: string }>;
  /** The planted truth models are evaluated against: each student's persona (by roster id) and the drift day. */
  planted: { personas: Record<string, Persona>; driftDay: number | null };
}

interface Student {
  id: string;
  firstName: string;
  lastName: string;
  email: string;
  phone: string;
  lmsId: string;
  sisId: string;
  timezone: string;
  program: string;
  course: string;
  consent: boolean;
  engagement: number;
  ability: number;
  persona: Persona;
}

type Rec = Record<string, unknown>;

/** How a source's records take each defect; undefined means the defect does not apply to the source. */
interface SourceShape {
  name: string;
  format: 'jsonl' | 'json' | 'csv';
  ts: string;
  stamp: (ms: number, offsetMinutes?: number) => string;
  defects: Partial<Record<DefectKind, (r: Rec, i: number) => void>>;
  crossDayDuplicates: boolean;
}

const LMS = 'https://lms.example.edu';
const DAY_MS = 86_400_000;
const VERBS = {
  launched: 'http://adlnet.gov/expapi/verbs/launched',
  experienced: 'http://adlnet.gov/expapi/verbs/experienced',
  answered: 'http://adlnet.gov/expapi/verbs/answered',
  completed: 'http://adlnet.gov/expapi/verbs/completed',
} as const;

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

function iso(ms: number, offsetMinutes = 0): string {
  if (!offsetMinutes) return new Date(ms).toISOString();
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 23);
  const abs = Math.abs(offsetMinutes);
  return `${local}${offsetMinutes > 0 ? '+' : '-'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

const nyFormat = new Intl.DateTimeFormat('en-CA', {
  timeZone: 'America/New_York',
  year: 'numeric',
  month: '2-digit',
  day: '2-digit',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hourCycle: 'h23',
});

/** `YYYY-MM-DD HH:MM:SS` in America/New_York, as the LMS log export writes it. */
function nyLocal(ms: number): string {
  const p = Object.fromEntries(nyFormat.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/**
 * Writes a deterministic multi-modal raw drop under `out`, laid out as the inbox expects
 * (`dt=YYYY-MM-DD/<source>/<file>`): nine sources, with defects injected in exact numbers recorded in
 * `_generator.json` (and returned) per landing date and source.
 */
export async function generate(opts: GenerateOptions): Promise<GenerateResult> {
  assertDate(opts.start);
  if (!Number.isInteger(opts.students) || opts.students < 1) throw new Error('--students must be a positive integer');
  if (!Number.isInteger(opts.days) || opts.days < 1) throw new Error('--days must be a positive integer');
  const knobs = opts.knobs ?? DEFAULT_KNOBS;
  const faker = new Faker({ locale: [en] });
  faker.seed(opts.seed);
  const rand = () => faker.number.float({ min: 0, max: 1 });
  const pick = <T>(xs: readonly T[]): T => faker.helpers.arrayElement(xs);
  const termDays = opts.termDays ?? opts.days + 31;
  if (!Number.isInteger(termDays) || termDays < 2) throw new Error('--term-days must be an integer of at least 2');
  if (termDays < opts.days)
    throw new Error(`--term-days ${termDays} ends the term before the drop's ${opts.days} days`);
  const termStart = addDays(opts.start, -1);
  const termEnd = addDays(opts.start, termDays - 1);

  const students: Student[] = [];
  for (let i = 1; i <= opts.students; i++) {
    const firstName = faker.person.firstName().replace(/[^A-Za-z]/g, '') || 'Sam';
    const lastName = faker.person.lastName().replace(/[^A-Za-z]/g, '') || 'Lee';
    students.push({
      id: `S${String(i).padStart(6, '0')}`,
      firstName,
      lastName,
      email: `${firstName}.${lastName}.${i}@students.example.edu`.toLowerCase(),
      phone: `+1 555 ${String(1000000 + i).slice(1, 4)} ${String(1000000 + i).slice(4)}`,
      lmsId: `lms-${String(100000 + i)}`,
      sisId: `sis-${String(500000 + i)}`,
      timezone: pick(knobs.timezones),
      program: pick(knobs.programs),
      course: pick(knobs.courses),
      consent: rand() < 0.9,
      engagement: 0,
      ability: 0.2 + 0.75 * rand(),
      persona: pick(Object.keys(PERSONAS) as Persona[]),
    });
    const [lo, hi] = PERSONAS[students.at(-1)!.persona].engagement;
    students.at(-1)!.engagement = lo + (hi - lo) * rand();
  }

  // This term's results follow the same planted mechanism as last term's, with their own noise (a separate stream, so
  // drops whose term outlasts them are unchanged). Withdrawals fall in the term's second half; the rest on its last day.
  const termFaker = new Faker({ locale: [en] });
  termFaker.seed(opts.seed + 1);
  const termRand = () => termFaker.number.float({ min: 0, max: 1 });
  const half = Math.floor(termDays / 2);
  const decidedDay = new Map<string, { outcome: string; day: number }>();
  for (const s of students) {
    const p = 0.6 * s.engagement + 0.4 * s.ability + (termRand() - 0.5) * 0.3;
    const outcome = p > 0.8 ? 'distinction' : p > 0.5 ? 'pass' : p > 0.35 ? 'fail' : 'withdrawn';
    const day = outcome === 'withdrawn' ? half + Math.floor(termRand() * (termDays - 1 - half)) : termDays - 1;
    if (day < opts.days) decidedDay.set(s.id, { outcome, day });
  }

  const files: string[] = [];
  const dates: string[] = [];
  const expected: GenerateResult['expected'] = {};
  const dirFor = (date: string, source: string) => {
    const p = join(opts.out, `dt=${date}`, source);
    mkdirSync(p, { recursive: true });
    return p;
  };
  const write = (path: string, text: string) => {
    const gz = knobs.gzipSources.some((src) => path.includes(`/${src}/`));
    const target = gz ? `${path}.gz` : path;
    writeFileSync(target, gz ? gzipSync(text) : text);
    files.push(target);
  };

  // Roster, enrolments and last term's outcomes arrive with the first day.
  const rosterDir = dirFor(opts.start, 'roster');
  write(
    join(rosterDir, 'roster.csv'),
    [
      'student_id,first_name,last_name,email,phone,lms_id,sis_id,timezone,program,consent,opt_out,gender,age_band,first_generation',
      ...students.map((s) =>
        [
          s.id,
          s.firstName,
          s.lastName,
          s.email,
          s.phone,
          s.lmsId,
          s.sisId,
          s.timezone,
          s.program,
          s.consent,
          rand() < 0.05,
          pick(['female', 'male', 'nonbinary', 'undisclosed']),
          pick(['17-20', '21-24', '25-34', '35+']),
          rand() < 0.3,
        ]
          .map(csvCell)
          .join(','),
      ),
    ].join('\n') + '\n',
  );
  write(
    join(rosterDir, 'enrolments.csv'),
    [
      'student_id,course,start_date,end_date',
      ...students.map((s) => [s.id, s.course, termStart, termEnd].join(',')),
    ].join('\n') + '\n',
  );
  const outcomesDir = dirFor(opts.start, 'outcomes');
  write(
    join(outcomesDir, 'outcomes.csv'),
    [
      'student_id,course,outcome,decided_at,term',
      ...students.map((s) => {
        const p = 0.6 * s.engagement + 0.4 * s.ability + (rand() - 0.5) * 0.3;
        const outcome = p > 0.8 ? 'distinction' : p > 0.5 ? 'pass' : p > 0.35 ? 'fail' : 'withdrawn';
        return [
          s.id,
          `PREV-${s.course}`,
          outcome,
          iso(Date.parse(`${addDays(opts.start, -40)}T12:00:00Z`)),
          'previous',
        ].join(',');
      }),
    ].join('\n') + '\n',
  );

  const unknownLms = (i: number) => `lms-${String(900000 + i)}`;
  const shapes: Record<string, SourceShape> = {
    xapi: {
      name: 'xapi',
      format: 'jsonl',
      ts: 'timestamp',
      stamp: iso,
      crossDayDuplicates: true,
      defects: {
        nulls: (r, i) => (i % 2 ? (r.verb = null) : delete r.timestamp),
        badTypes: (r) => (r.result = { ...(r.result as Rec), success: 'maybe' }),
        malformedTimestamps: (r) => (r.timestamp = pick(['2026-13-45T25:61:00Z', 'yesterday', '12/31/2025 10:00'])),
        wrongOffsets: (r) => (r.timestamp = String(r.timestamp).replace(/(Z|[+-]\d{2}:\d{2})$/, '+19:00')),
        unknownStudents: (r, i) =>
          (r.actor = { objectType: 'Agent', mbox: `mailto:visitor${i}@elsewhere.example.org` }),
      },
    },
    caliper: {
      name: 'caliper',
      format: 'json',
      ts: 'eventTime',
      stamp: iso,
      crossDayDuplicates: true,
      defects: {
        nulls: (r) => delete r.action,
        badTypes: (r) => (r.generated = { type: 'Score', scoreGiven: 'n/a' }),
        malformedTimestamps: (r) => (r.eventTime = '2026-02-30 noon'),
        wrongOffsets: (r) => (r.eventTime = String(r.eventTime).replace(/Z$/, '-16:00')),
        unknownStudents: (r, i) => (r.actor = `${LMS}/users/${unknownLms(i)}`),
      },
    },
    'lms-csv': {
      name: 'lms-csv',
      format: 'csv',
      ts: 'timestamp',
      stamp: nyLocal,
      crossDayDuplicates: true,
      defects: {
        nulls: (r) => (r.problem_id = ''),
        badTypes: (r) => (r.attempts = 'two'),
        malformedTimestamps: (r) => (r.timestamp = '31/12/2026 10:00'),
        unknownStudents: (r, i) => (r.student_id = unknownLms(i)),
      },
    },
    assessments: {
      name: 'assessments',
      format: 'csv',
      ts: 'submitted_at',
      stamp: iso,
      crossDayDuplicates: false,
      defects: {
        nulls: (r) => (r.assessment = ''),
        badTypes: (r) => (r.score = 'abc'),
        malformedTimestamps: (r) => (r.submitted_at = 'Monday 9am'),
        unknownStudents: (r, i) => (r.student = `S9${String(i).padStart(5, '0')}`),
      },
    },
    video: {
      name: 'video',
      format: 'jsonl',
      ts: 'ts',
      stamp: iso,
      crossDayDuplicates: false,
      defects: {
        nulls: (r) => delete r.media_id,
        badTypes: (r) => (r.position = 'start'),
        unknownStudents: (r, i) => (r.student = unknownLms(i)),
      },
    },
    forum: {
      name: 'forum',
      format: 'json',
      ts: 'created_at',
      stamp: iso,
      crossDayDuplicates: false,
      defects: { unknownStudents: (r, i) => (r.author = `guest${i}@elsewhere.example.org`) },
    },
  };
  // Defects that only need the timestamp, for every source that has them.
  for (const s of Object.values(shapes)) {
    if (s.name !== 'forum') {
      s.defects.futureTimestamps = (r) => (r[s.ts] = s.stamp((r.__ms as number) + 4 * DAY_MS));
      // Three days before the term starts, at the same time of day: outside every enrolment (±1 day), however long
      // the term and whichever day of the drop.
      s.defects.outOfTerm = (r) =>
        (r[s.ts] = s.stamp(Date.parse(`${termStart}T00:00:00Z`) - 3 * DAY_MS + ((r.__ms as number) % DAY_MS)));
    }
    if (s.format === 'jsonl') s.defects.invalidJson = () => undefined;
  }
  delete shapes.assessments!.defects.outOfTerm;
  delete shapes.video!.defects.outOfTerm;

  const previousClean: Record<string, Rec[]> = {};

  for (let d = 0; d < opts.days; d++) {
    const date = addDays(opts.start, d);
    dates.push(date);
    const dayStart = Date.parse(`${date}T00:00:00Z`);
    const recs: Record<string, Rec[]> = { xapi: [], caliper: [], 'lms-csv': [], assessments: [], video: [], forum: [] };
    const sensorRows: Rec[] = [];
    let forumPersonal = 0;

    const drifted = opts.driftDay !== undefined && d >= opts.driftDay;
    for (const s0 of students) {
      const gone = decidedDay.get(s0.id);
      if (gone?.outcome === 'withdrawn' && d > gone.day) continue;
      const p = PERSONAS[s0.persona];
      // After the drift day everyone engages less, practises less and watches more.
      const s = drifted ? { ...s0, engagement: s0.engagement * 0.5, ability: s0.ability * 0.7 } : s0;
      const m = drifted ? { ...p, lmsCsv: p.lmsCsv * 0.3, video: p.video * 2, forum: p.forum * 2 } : p;
      if (rand() > knobs.activeDayShare * (0.5 + s.engagement / 2)) continue;
      let t = dayStart + (7 + Math.floor(rand() * 12)) * 3_600_000 + Math.floor(rand() * 3_600_000);
      const sessionStart = t;
      const quiz = faker.number.int({ min: 1, max: 30 });
      const courseIri = `${LMS}/course/${s.course}`;
      const n = Math.max(1, Math.round(knobs.perActiveDay.xapi * m.xapi * s.engagement * (0.5 + rand())));
      for (let k = 0; k < n; k++) {
        t += Math.floor(rand() * (rand() < 0.1 ? 90 : 8) * 60_000) + 5_000;
        if (t >= dayStart + DAY_MS - 3_600_000) break;
        const r = rand();
        const verb = r < 0.15 ? 'launched' : r < 0.4 ? 'experienced' : r < 0.9 ? 'answered' : 'completed';
        const offset = rand() < knobs.offsetTimestampShare ? pick([60, 120, -300, 330]) : 0;
        const stmt: Rec = {
          id: faker.string.uuid(),
          actor:
            rand() < knobs.accountActorShare
              ? { objectType: 'Agent', account: { homePage: LMS, name: s.lmsId } }
              : { objectType: 'Agent', mbox: `mailto:${s.email}` },
          verb: { id: VERBS[verb], display: { 'en-US': verb } },
          object: {
            objectType: 'Activity',
            id: `${courseIri}/quiz/${quiz}/item/${faker.number.int({ min: 1, max: 10 })}`,
            definition: { type: 'http://adlnet.gov/expapi/activities/question' },
          },
          context: { contextActivities: { grouping: [{ id: courseIri }] } },
          timestamp: iso(t, offset),
          stored: iso(t + 1500),
          __ms: t,
        };
        if (verb === 'answered') {
          const success = rand() < s.ability;
          stmt.result = {
            success,
            score: { scaled: success ? 1 : Math.round(rand() * 50) / 100 },
            duration: `PT${10 + Math.floor(rand() * 170)}S`,
          };
        }
        recs.xapi!.push(stmt);
      }
      const nc = Math.max(1, Math.round(knobs.perActiveDay.caliper * m.caliper * s.engagement * (0.5 + rand())));
      let ct = sessionStart - 120_000;
      for (let k = 0; k < nc; k++) {
        ct += 30_000 + Math.floor(rand() * 300_000);
        const kind = pick([
          'NavigationEvent',
          'ViewEvent',
          'AssessmentItemEvent',
          'GradeEvent',
          'MediaEvent',
          'SessionEvent',
          'ToolUseEvent',
        ] as const);
        const ev: Rec = {
          '@context': 'http://purl.imsglobal.org/ctx/caliper/v1p2',
          id: `urn:uuid:${faker.string.uuid()}`,
          type: kind,
          actor: rand() < 0.5 ? `${LMS}/users/${s.lmsId}` : { id: `${LMS}/users/${s.lmsId}`, type: 'Person' },
          action: {
            NavigationEvent: 'NavigatedTo',
            ViewEvent: 'Viewed',
            AssessmentItemEvent: 'Completed',
            GradeEvent: 'Graded',
            MediaEvent: 'Started',
            SessionEvent: 'LoggedIn',
            ToolUseEvent: 'Used',
          }[kind],
          object:
            rand() < 0.5
              ? `${courseIri}/page/${faker.number.int({ min: 1, max: 40 })}`
              : { id: `${courseIri}/page/${faker.number.int({ min: 1, max: 40 })}`, type: 'WebPage' },
          eventTime: iso(ct),
          edApp: `${LMS}/app`,
          group: { id: courseIri, type: 'CourseSection' },
          __ms: ct,
        };
        if (kind === 'GradeEvent')
          ev.generated = { type: 'Score', scoreGiven: Math.round(s.ability * 10 * (0.5 + rand())) };
        recs.caliper!.push(ev);
      }
      const nl = Math.max(1, Math.round(knobs.perActiveDay.lmsCsv * m.lmsCsv * s.engagement * (0.5 + rand())));
      let lt = sessionStart + 60_000;
      for (let k = 0; k < nl; k++) {
        lt += 20_000 + Math.floor(rand() * 240_000);
        const attempts = 1 + Math.floor(rand() * (3 - 2 * s.ability));
        recs['lms-csv']!.push({
          student_id: s.lmsId,
          timestamp: nyLocal(lt),
          problem_id: `${s.course}-P${faker.number.int({ min: 1, max: 60 })}`,
          correct: rand() < s.ability ? 1 : 0,
          attempts,
          time_spent: 20 + Math.floor(rand() * 400),
          __ms: lt,
        });
      }
      if (rand() < Math.min(1, knobs.assessmentShare * m.assessment)) {
        const sub = t + 600_000;
        const dueOffset = rand() < 0.7 ? 2 : -1;
        recs.assessments!.push({
          student: s.id,
          assessment: `${s.course}-A${1 + (d % 5)}`,
          submitted_at: iso(sub),
          score: Math.round(s.ability * 100 * (0.6 + 0.4 * rand())),
          max_score: 100,
          due_at: iso(dayStart + dueOffset * DAY_MS + 23 * 3_600_000),
          weight: 0.2,
          __ms: sub,
        });
      }
      if (rand() < Math.min(1, knobs.videoShare * m.video)) {
        const media = `${courseIri}/lecture/${1 + (d % 12)}`;
        const dur = 600;
        let vt = t + 60_000;
        let pos = rand() < 0.2 ? 120 : 0;
        const push = (event: string, extra: Rec = {}) =>
          recs.video!.push({
            student: s.lmsId,
            media_id: media,
            event,
            position: pos,
            duration: dur,
            ts: iso(vt),
            ...extra,
            __ms: vt,
          });
        push('play');
        while (pos < dur * s.engagement) {
          const watched = 60 + Math.floor(rand() * 120);
          vt += watched * 1000;
          pos = Math.min(dur, pos + watched);
          if (rand() < 0.2 && pos > 90) {
            const to = pos - 60;
            push('seek', { from: pos, to });
            pos = to;
            push('play');
          } else {
            push('pause');
            vt += 20_000;
            if (pos < dur) push('play');
          }
        }
        if (pos >= dur) push('ended');
      }
      if (rand() < Math.min(1, knobs.forumShare * m.forum)) {
        const bank = drifted ? DRIFT_PHRASES : FORUM_PHRASES;
        let text = Array.from({ length: 1 + Math.floor(rand() * 2) }, () =>
          pick(bank).replace('{n}', String(1 + Math.floor(rand() * 20))),
        ).join(' ');
        if (rand() < knobs.defects.personalDataInText) {
          const other = pick(students);
          text += pick([
            ` Thanks ${other.firstName} ${other.lastName} for the help!`,
            ` Write to me at ${s.email}.`,
            ` Call me on ${s.phone}.`,
          ]);
          forumPersonal++;
        }
        recs.forum!.push({
          post_id: faker.string.uuid(),
          author: s.email,
          thread: `${s.course}-T${1 + (d % 4)}`,
          kind: pick(['post', 'reply', 'reply', 'essay']),
          created_at: iso(t + 300_000),
          text,
          __ms: t + 300_000,
        });
      }
      if (s.consent && rand() < knobs.sensorShare) {
        for (let st = sessionStart; st < sessionStart + 10 * 60_000; st += knobs.sensorPeriodSeconds * 1000) {
          sensorRows.push({
            sis_id: s.sisId,
            ts: new Date(st),
            heart_rate: 60 + Math.round(rand() * 40),
            attention: Math.round(rand() * 100) / 100,
            device: 'band-1',
          });
        }
      }
    }

    expected[date] = {};
    for (const shape of Object.values(shapes)) {
      const list = recs[shape.name]!;
      const clean = list.length;
      const applies = (k: DefectKind) => k === 'duplicates' || k === 'lateArrivals' || !!shape.defects[k];
      const count = (k: DefectKind) =>
        applies(k) ? Math.max(clean >= 40 ? 1 : 0, Math.floor(clean * knobs.defects[k])) : 0;
      const order = faker.helpers.shuffle(list.map((_, i) => i));
      let cursor = 0;
      const take = (k: DefectKind) => order.slice(cursor, (cursor += count(k)));
      const byRule: Record<string, number> = {};
      const corrupt = new Set<number>();
      const invalid: number[] = [];
      for (const k of [
        'nulls',
        'badTypes',
        'malformedTimestamps',
        'wrongOffsets',
        'futureTimestamps',
        'unknownStudents',
        'outOfTerm',
        'invalidJson',
      ] as DefectKind[]) {
        const idx = take(k);
        if (!idx.length) continue;
        for (const i of idx) {
          shape.defects[k]!(list[i]!, i);
          corrupt.add(i);
          if (k === 'invalidJson') invalid.push(i);
        }
        const rule = DEFECT_RULES[k]!;
        byRule[rule] = (byRule[rule] ?? 0) + idx.length;
      }
      let late = 0;
      if (d >= 3 && shape.crossDayDuplicates) {
        for (const i of take('lateArrivals')) {
          const ms = (list[i]!.__ms as number) - (1 + (i % 3)) * DAY_MS;
          list[i]![shape.ts] = shape.stamp(ms);
          list[i]!.__ms = ms;
          late++;
        }
      }
      const dupSources = take('duplicates');
      const cleanIdx = order.filter((i) => !corrupt.has(i));
      let truncated: number | undefined;
      if (shape.name === 'video' && cleanIdx.length > dupSources.length + 1) {
        truncated = order.slice(cursor).find((i) => !corrupt.has(i));
        if (truncated !== undefined) {
          corrupt.add(truncated);
          cursor++;
          byRule.invalid_json = (byRule.invalid_json ?? 0) + 1;
        }
      }
      const crossDay =
        shape.crossDayDuplicates && previousClean[shape.name]?.length
          ? previousClean[shape.name]!.slice(0, Math.floor(dupSources.length / 2))
          : [];
      previousClean[shape.name] = list.filter((_, i) => !corrupt.has(i)).slice(0, 50);

      const strip = (r: Rec) => Object.fromEntries(Object.entries(r).filter(([k]) => k !== '__ms'));
      const serial = list.map((r, i) => (invalid.includes(i) ? JSON.stringify(strip(r)).slice(0, 40) : strip(r)));
      const records: (Rec | string)[] = faker.helpers.shuffle([
        ...serial.filter((_, i) => i !== truncated),
        ...dupSources.map((i) => serial[i]!),
        ...crossDay.map(strip),
      ]);
      const quarantined = Object.values(byRule).reduce((a, b) => a + b, 0);
      const raw = records.length + (truncated !== undefined ? 1 : 0);
      expected[date][shape.name] = {
        raw,
        accepted: clean - quarantined,
        duplicates: dupSources.length + crossDay.length,
        quarantined,
        late,
        byRule,
        ...(shape.name === 'forum' ? { personalData: forumPersonal } : {}),
      };

      const dir = dirFor(date, shape.name);
      if (shape.format === 'jsonl') {
        let text = records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
        if (truncated !== undefined) text += JSON.stringify(strip(list[truncated]!)).slice(0, 30);
        write(join(dir, shape.name === 'xapi' ? 'statements.jsonl' : 'player-events.jsonl'), text);
      } else if (shape.format === 'json') {
        const body =
          shape.name === 'caliper'
            ? {
                sensor: `${LMS}/sensor`,
                sendTime: iso(dayStart + DAY_MS - 60_000),
                dataVersion: 'http://purl.imsglobal.org/ctx/caliper/v1p2',
                data: records,
              }
            : records;
        write(join(dir, shape.name === 'caliper' ? 'events.json' : 'posts.json'), JSON.stringify(body));
      } else {
        const cols = Object.keys(list[0] ?? {}).filter((k) => k !== '__ms');
        const header =
          shape.name === 'lms-csv'
            ? ['student_id', 'timestamp', 'problem_id', 'correct', 'attempts', 'time_spent']
            : cols;
        write(
          join(dir, shape.name === 'lms-csv' ? 'log-export.csv' : 'results.csv'),
          [header.join(','), ...records.map((r) => header.map((h) => csvCell((r as Rec)[h])).join(','))].join('\n') +
            '\n',
        );
      }
    }

    const decidedToday = students.filter((s) => decidedDay.get(s.id)?.day === d);
    if (decidedToday.length) {
      write(
        join(dirFor(date, 'outcomes'), 'decisions.csv'),
        [
          'student_id,course,outcome,decided_at,term',
          ...decidedToday.map((s) =>
            [s.id, s.course, decidedDay.get(s.id)!.outcome, iso(dayStart + 18 * 3_600_000), 'current'].join(','),
          ),
        ].join('\n') + '\n',
      );
      const n = decidedToday.length + (d === 0 ? students.length : 0);
      expected[date].outcomes = { raw: n, accepted: n, duplicates: 0, quarantined: 0, late: 0, byRule: {} };
    }

    const sensorDir = dirFor(date, 'sensor');
    const schema = new parquet.ParquetSchema({
      sis_id: { type: 'UTF8' },
      ts: { type: 'TIMESTAMP_MILLIS' },
      heart_rate: { type: 'DOUBLE' },
      attention: { type: 'DOUBLE' },
      device: { type: 'UTF8' },
    });
    const sensorPath = join(sensorDir, 'samples.parquet');
    const writer = await parquet.ParquetWriter.openFile(schema, sensorPath);
    for (const r of sensorRows) await writer.appendRow(r);
    await writer.close();
    files.push(sensorPath);
    expected[date].sensor = {
      raw: sensorRows.length,
      accepted: sensorRows.length,
      duplicates: 0,
      quarantined: 0,
      late: 0,
      byRule: {},
    };
    opts.onProgress?.(d + 1, opts.days);
  }
  const firstDay = students.length + students.filter((s) => decidedDay.get(s.id)?.day === 0).length;
  expected[opts.start]!.outcomes = {
    raw: firstDay,
    accepted: firstDay,
    duplicates: 0,
    quarantined: 0,
    late: 0,
    byRule: {},
  };

  const result: GenerateResult = {
    out: opts.out,
    dates,
    students: students.length,
    files,
    expected,
    term: { start: termStart, end: termEnd },
    decided: Object.fromEntries(
      [...decidedDay].map(([id, x]) => [id, { outcome: x.outcome, date: addDays(opts.start, x.day) }]),
    ),
    planted: { personas: Object.fromEntries(students.map((x) => [x.id, x.persona])), driftDay: opts.driftDay ?? null },
  };
  writeFileSync(
    join(opts.out, '_generator.json'),
    JSON.stringify(
      {
        options: {
          students: opts.students,
          days: opts.days,
          start: opts.start,
          seed: opts.seed,
          driftDay: opts.driftDay,
          termDays,
        },
        knobs,
        ...result,
      },
      null,
      2,
    ),
  );
  return result;
}
