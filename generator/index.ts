import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Faker, en } from '@faker-js/faker';
import { addDays, assertDate } from '../lake/paths.js';
import { DEFAULT_KNOBS, type DefectKind, type GeneratorKnobs } from './knobs.js';

export interface GenerateOptions {
  out: string;
  students: number;
  days: number;
  start: string;
  seed: number;
  knobs?: GeneratorKnobs;
  onProgress?: (done: number, total: number) => void;
}

/** The quarantine rule each injected defect must end under. */
export const DEFECT_RULES: Record<Exclude<DefectKind, 'duplicates'>, string> = {
  nulls: 'missing_required',
  malformedTimestamps: 'malformed_timestamp',
  futureTimestamps: 'future_timestamp',
  unknownStudents: 'unknown_student',
  invalidJson: 'invalid_json',
};

export interface ExpectedCounts {
  raw: number;
  accepted: number;
  duplicates: number;
  quarantined: number;
  byRule: Record<string, number>;
}

export interface GenerateResult {
  out: string;
  dates: string[];
  students: number;
  files: string[];
  /** Per date, what silver must find in the xAPI source. */
  expected: Record<string, { xapi: ExpectedCounts }>;
}

interface Student {
  id: string;
  firstName: string;
  lastName: string;
  email: string;
  lmsId: string;
  timezone: string;
  program: string;
  course: string;
  engagement: number;
  ability: number;
}

const LMS = 'https://lms.example.edu';
const VERBS = {
  launched: 'http://adlnet.gov/expapi/verbs/launched',
  experienced: 'http://adlnet.gov/expapi/verbs/experienced',
  answered: 'http://adlnet.gov/expapi/verbs/answered',
  completed: 'http://adlnet.gov/expapi/verbs/completed',
} as const;

function csvCell(v: string | number | boolean): string {
  const s = String(v);
  return /[",\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

class LineWriter {
  private fd: number;
  private buf: string[] = [];
  private size = 0;
  constructor(path: string) {
    this.fd = openSync(path, 'w');
  }
  line(s: string): void {
    this.buf.push(s);
    this.size += s.length;
    if (this.size > 1 << 20) this.flush();
  }
  private flush(): void {
    if (this.buf.length) writeSync(this.fd, this.buf.join('\n') + '\n');
    this.buf = [];
    this.size = 0;
  }
  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

function offsetIso(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, 23);
  const sign = offsetMinutes >= 0 ? '+' : '-';
  const abs = Math.abs(offsetMinutes);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
}

/**
 * Writes a deterministic multi-modal raw drop under `out`, laid out as the inbox expects
 * (`dt=YYYY-MM-DD/<source>/<file>`), with defects injected in exact, recorded numbers (`_generator.json`).
 */
export function generate(opts: GenerateOptions): GenerateResult {
  assertDate(opts.start);
  if (!Number.isInteger(opts.students) || opts.students < 1) throw new Error('--students must be a positive integer');
  if (!Number.isInteger(opts.days) || opts.days < 1) throw new Error('--days must be a positive integer');
  const knobs = opts.knobs ?? DEFAULT_KNOBS;
  const faker = new Faker({ locale: [en] });
  faker.seed(opts.seed);
  const rand = () => faker.number.float({ min: 0, max: 1 });

  const students: Student[] = [];
  for (let i = 1; i <= opts.students; i++) {
    const firstName = faker.person.firstName();
    const lastName = faker.person.lastName();
    const id = `S${String(i).padStart(6, '0')}`;
    students.push({
      id,
      firstName,
      lastName,
      email: `${firstName}.${lastName}.${i}@students.example.edu`.toLowerCase().replace(/[^a-z0-9.@-]/g, ''),
      lmsId: `lms-${String(100000 + i)}`,
      timezone: faker.helpers.arrayElement(knobs.timezones),
      program: faker.helpers.arrayElement(knobs.programs),
      course: faker.helpers.arrayElement(knobs.courses),
      engagement: 0.2 + 0.8 * rand(),
      ability: 0.2 + 0.75 * rand(),
    });
  }

  const files: string[] = [];
  const dates: string[] = [];
  const expected: GenerateResult['expected'] = {};

  const rosterDir = join(opts.out, `dt=${opts.start}`, 'roster');
  mkdirSync(rosterDir, { recursive: true });
  const roster = [
    'student_id,first_name,last_name,email,lms_id,timezone,program,course,consent,opt_out,gender,age_band',
    ...students.map((s) =>
      [
        s.id,
        s.firstName,
        s.lastName,
        s.email,
        s.lmsId,
        s.timezone,
        s.program,
        s.course,
        rand() < 0.9,
        rand() < 0.05,
        faker.helpers.arrayElement(['female', 'male', 'nonbinary', 'undisclosed']),
        faker.helpers.arrayElement(['17-20', '21-24', '25-34', '35+']),
      ]
        .map(csvCell)
        .join(','),
    ),
  ];
  writeFileSync(join(rosterDir, 'roster.csv'), roster.join('\n') + '\n');
  files.push(join(rosterDir, 'roster.csv'));

  for (let d = 0; d < opts.days; d++) {
    const date = addDays(opts.start, d);
    dates.push(date);
    const dayStart = Date.parse(`${date}T00:00:00Z`);
    const dir = (source: string) => {
      const p = join(opts.out, `dt=${date}`, source);
      mkdirSync(p, { recursive: true });
      return p;
    };

    const statements: Record<string, unknown>[] = [];
    const assessments: string[] = ['student,assessment,submitted_at,score,max_score,due_at,weight'];
    const video = new LineWriter(join(dir('video'), 'player-events.jsonl'));
    const posts: Record<string, unknown>[] = [];

    for (const s of students) {
      if (rand() > knobs.activeDayShare * (0.5 + s.engagement / 2)) continue;
      const n = Math.max(1, Math.round(knobs.eventsPerActiveDay * s.engagement * (0.5 + rand())));
      let t = dayStart + (7 + Math.floor(rand() * 13)) * 3_600_000 + Math.floor(rand() * 3_600_000);
      const quiz = faker.number.int({ min: 1, max: 30 });
      for (let k = 0; k < n; k++) {
        t += Math.floor(rand() * (rand() < 0.1 ? 90 : 8) * 60_000) + 5_000;
        if (t >= dayStart + 86_400_000 - 60_000) break;
        const r = rand();
        const verb = r < 0.15 ? 'launched' : r < 0.4 ? 'experienced' : r < 0.9 ? 'answered' : 'completed';
        const item = faker.number.int({ min: 1, max: 10 });
        const byAccount = rand() < knobs.accountActorShare;
        const offset = rand() < knobs.offsetTimestampShare ? faker.helpers.arrayElement([60, 120, -300, 330]) : 0;
        const stmt: Record<string, unknown> = {
          id: faker.string.uuid(),
          actor: byAccount
            ? { objectType: 'Agent', account: { homePage: LMS, name: s.lmsId } }
            : { objectType: 'Agent', mbox: `mailto:${s.email}` },
          verb: { id: VERBS[verb], display: { 'en-US': verb } },
          object: {
            objectType: 'Activity',
            id: `${LMS}/course/${s.course}/quiz/${quiz}/item/${item}`,
            definition: { type: 'http://adlnet.gov/expapi/activities/question' },
          },
          context: { contextActivities: { grouping: [{ id: `${LMS}/course/${s.course}` }] } },
          timestamp: offset ? offsetIso(t, offset) : new Date(t).toISOString(),
          stored: new Date(t + 1500).toISOString(),
        };
        if (verb === 'answered') {
          const success = rand() < s.ability;
          stmt.result = {
            success,
            score: { scaled: success ? 1 : Math.round(rand() * 50) / 100 },
            duration: `PT${String(10 + Math.floor(rand() * 170))}S`,
          };
        }
        statements.push(stmt);
      }
      if (rand() < 0.3) {
        const submitted = new Date(t + 600_000).toISOString();
        const due = new Date(dayStart + (rand() < 0.7 ? 2 : -1) * 86_400_000).toISOString();
        assessments.push(
          [
            s.id,
            `${s.course}-A${String(1 + (d % 5))}`,
            submitted,
            Math.round(s.ability * 100 * (0.6 + 0.4 * rand())),
            100,
            due,
            0.2,
          ]
            .map(csvCell)
            .join(','),
        );
      }
      if (rand() < 0.4) {
        const media = `${LMS}/course/${s.course}/lecture/${String(1 + (d % 12))}`;
        let pos = 0;
        const dur = 600;
        let vt = t + 60_000;
        video.line(
          JSON.stringify({
            student: s.lmsId,
            media_id: media,
            event: 'play',
            position: 0,
            duration: dur,
            ts: new Date(vt).toISOString(),
          }),
        );
        while (pos < dur * s.engagement) {
          pos += 60 + Math.floor(rand() * 120);
          vt += 120_000;
          video.line(
            JSON.stringify({
              student: s.lmsId,
              media_id: media,
              event: 'pause',
              position: Math.min(pos, dur),
              duration: dur,
              ts: new Date(vt).toISOString(),
            }),
          );
        }
      }
      if (rand() < 0.08) {
        posts.push({
          author: s.email,
          thread: `${s.course}-T${String(1 + (d % 4))}`,
          created_at: new Date(t + 300_000).toISOString(),
          text: faker.lorem.sentences({ min: 1, max: 3 }),
        });
      }
    }
    video.close();

    // Defects: taken from distinct clean statements so each lands under exactly one rule.
    const clean = statements.length;
    const count = (k: DefectKind) => Math.floor(clean * knobs.defects[k]);
    const order = faker.helpers.shuffle(statements.map((_, i) => i));
    const lines: string[] = statements.map((s) => JSON.stringify(s));
    let cursor = 0;
    const take = (k: DefectKind): number[] => order.slice(cursor, (cursor += count(k)));
    const byRule: Record<string, number> = {};
    for (const i of take('nulls')) {
      const s = { ...statements[i] };
      if (i % 2) s.verb = null;
      else delete s.timestamp;
      lines[i] = JSON.stringify(s);
    }
    for (const i of take('malformedTimestamps')) {
      lines[i] = JSON.stringify({
        ...statements[i],
        timestamp: faker.helpers.arrayElement(['2026-13-45T25:61:00Z', 'yesterday', '12/31/2025 10:00']),
      });
    }
    for (const i of take('futureTimestamps')) {
      lines[i] = JSON.stringify({ ...statements[i], timestamp: new Date(dayStart + 4 * 86_400_000).toISOString() });
    }
    for (const i of take('unknownStudents')) {
      lines[i] = JSON.stringify({
        ...statements[i],
        actor: { objectType: 'Agent', mbox: `mailto:visitor${String(i)}@elsewhere.example.org` },
      });
    }
    for (const i of take('invalidJson')) {
      lines[i] = lines[i]!.slice(0, Math.floor(lines[i]!.length / 2));
    }
    for (const k of Object.keys(DEFECT_RULES) as (keyof typeof DEFECT_RULES)[]) byRule[DEFECT_RULES[k]] = count(k);
    const quarantined = Object.values(byRule).reduce((a, b) => a + b, 0);
    const dupSources = take('duplicates');
    for (const i of dupSources) lines.push(lines[i]!);
    const dupLines = faker.helpers.shuffle(lines);

    const xapi = new LineWriter(join(dir('xapi'), 'statements.jsonl'));
    for (const l of dupLines) xapi.line(l);
    xapi.close();
    writeFileSync(join(dir('assessments'), 'results.csv'), assessments.join('\n') + '\n');
    writeFileSync(join(dir('forum'), 'posts.json'), JSON.stringify(posts, null, 1));
    files.push(
      join(opts.out, `dt=${date}`, 'xapi', 'statements.jsonl'),
      join(opts.out, `dt=${date}`, 'video', 'player-events.jsonl'),
      join(opts.out, `dt=${date}`, 'assessments', 'results.csv'),
      join(opts.out, `dt=${date}`, 'forum', 'posts.json'),
    );
    expected[date] = {
      xapi: {
        raw: dupLines.length,
        duplicates: dupSources.length,
        quarantined,
        accepted: clean - quarantined,
        byRule,
      },
    };
    opts.onProgress?.(d + 1, opts.days);
  }

  const result: GenerateResult = { out: opts.out, dates, students: students.length, files, expected };
  writeFileSync(
    join(opts.out, '_generator.json'),
    JSON.stringify(
      { options: { students: opts.students, days: opts.days, start: opts.start, seed: opts.seed }, knobs, ...result },
      null,
      2,
    ),
  );
  return result;
}
