import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { addDays } from '../../lake/paths.js';
import { generate } from '../../generator/index.js';
import { createDeps } from '../../workers/deps.js';
import { dataNight, testConfig } from '../helpers.js';

const config = testConfig();
const deps = createDeps(config);
const acts = createActivities(deps);
const START = '2026-04-06';

describe('a late event dated before the lake’s first night', () => {
  afterAll(() => deps.duck.close());

  it('is aligned with the first roster snapshot, and days no event reached get no features', async () => {
    await generate({ out: config.inbox, students: 20, days: 3, start: START, seed: 5 });
    // On the third night, an LMS export row from two days before the first night (the term's first day less the
    // enrolment tolerance): its day has no roster snapshot of its own, and the day after it no data at all.
    const third = addDays(START, 2);
    const early = addDays(START, -2);
    const csv = join(config.inbox, `dt=${third}`, 'lms-csv', 'log-export.csv');
    const student = readFileSync(csv, 'utf8').split('\n')[1]!.split(',')[0]!;
    appendFileSync(csv, `${student},${early} 12:00:00,MATH101-P7,1,1,90\n`);
    for (const date of [START, addDays(START, 1), third]) {
      const { aligned: align, gold: g } = await dataNight(acts, date);
      if (date === third) {
        expect(align[0]).toBe(early);
        expect(g.partitions.map((p) => p.date)).toContain(early);
        expect(g.partitions.map((p) => p.date)).not.toContain(addDays(START, -1));
      }
    }
    const day = await deps.lake.readManifest('silver', 'student_day', early);
    // Nobody is enrolled yet that day: the one row is the student whose event it is.
    expect(day?.rowCount).toBe(1);
    expect(await deps.lake.readManifest('silver', 'student_day', addDays(START, -1))).toBeNull();
    expect(await deps.lake.readManifest('gold', 'student_features', addDays(START, -1))).toBeNull();
  });
});

describe('a landing without any roster', () => {
  const cfg = testConfig();
  const d2 = createDeps(cfg);
  const a2 = createActivities(d2);
  afterAll(() => d2.duck.close());

  it('fails non-retryably, naming the fix, after reading its sources, and commits no silver', async () => {
    await generate({ out: cfg.inbox, students: 10, days: 1, start: START, seed: 9 });
    rmSync(join(cfg.inbox, `dt=${START}`, 'roster'), { recursive: true });
    await a2.landBronzeFiles({ date: START, runId: 'r' });
    const err = await a2.buildSilverTables({ date: START, runId: 'r', writeId: 'w' }).then(
      () => null,
      (e: unknown) => e as { message: string; nonRetryable?: boolean },
    );
    expect(err?.message).toMatch(/no roster in bronze on or before 2026-04-06: ingest one with edlake ingest/);
    expect(err?.nonRetryable).toBe(true);
    expect(await d2.lake.listDatasets('silver')).toEqual([]);
  });
});
