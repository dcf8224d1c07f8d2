import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { beforeAll, describe, expect, it } from 'vitest';
import { createActivities } from '../../activities/index.js';
import { ingestFiles } from '../../activities/bronze.js';
import { generate } from '../../generator/index.js';
import { parquetScan } from '../../lake/duck.js';
import { createDeps } from '../../workers/deps.js';
import { tempDir, testConfig } from '../helpers.js';

// The lms-csv export writes zone-less local times (America/New_York). The term spans the switch to daylight time
// (Sunday 2033-03-13, 02:00 → 03:00), and one landing carries times from that night and from two weeks earlier.
const config = testConfig();
const deps = createDeps(config);
const acts = createActivities(deps);
const START = '2033-03-01';
const LANDING = '2033-03-20';
const LOCAL = [
  '2033-03-20 10:00:00', // daylight time, the landing day
  '2033-03-13 01:30:00', // standard time, the last half hour before the switch
  '2033-03-13 02:30:00', // a time the switch skips
  '2033-03-13 03:30:00', // daylight time, just after the switch
  '2033-03-05 09:00:00', // two weeks before the landing: standard time
  '2033-03-05 09:00:00.250', // not in the export's format
];

beforeAll(async () => {
  await generate({ out: config.inbox, students: 5, days: 1, start: START, seed: 11, termDays: 60 });
  await acts.landBronzeFiles({ date: START, runId: 'r0' });
  await acts.buildSilverTables({ date: START, runId: 'r0', writeId: 'w0' });
  const dir = tempDir('local-time');
  const path = join(dir, 'log-export.csv');
  writeFileSync(
    path,
    [
      'student_id,timestamp,problem_id,correct,attempts,time_spent',
      ...LOCAL.map((ts, i) => `lms-100001,${ts},P${i},1,1,30`),
    ].join('\n') + '\n',
  );
  await ingestFiles(deps.lake, { source: 'lms-csv', date: LANDING, paths: [path], runId: 'r1' });
  await acts.buildSilverTables({ date: LANDING, runId: 'r1', writeId: 'w1' });
}, 120_000);

describe('zone-less local times', () => {
  it('are converted to UTC with the offset in force at that instant, near the landing or long before it', async () => {
    const rows: { problem_id: string; ts_utc: string; ts_offset_minutes: number }[] = [];
    for (const d of ['2033-03-05', '2033-03-13', LANDING]) {
      const { paths } = await deps.lake.localFiles('silver', 'lms_csv', d);
      const db = await DuckDBInstance.create(':memory:');
      const conn = await db.connect();
      rows.push(
        ...((
          await conn.runAndReadAll(
            `SELECT problem_id, strftime(ts_utc, '%Y-%m-%d %H:%M:%S') AS ts_utc, ts_offset_minutes FROM ${parquetScan(paths)}`,
          )
        ).getRowObjectsJson() as typeof rows),
      );
      conn.closeSync();
      db.closeSync();
    }
    const at = (p: string) => rows.find((r) => r.problem_id === p);
    expect(at('P0')).toMatchObject({ ts_utc: '2033-03-20 14:00:00', ts_offset_minutes: -240 });
    expect(at('P1')).toMatchObject({ ts_utc: '2033-03-13 06:30:00', ts_offset_minutes: -300 });
    expect(at('P3')).toMatchObject({ ts_utc: '2033-03-13 07:30:00', ts_offset_minutes: -240 });
    expect(at('P4')).toMatchObject({ ts_utc: '2033-03-05 14:00:00', ts_offset_minutes: -300 });
    // The skipped local time is accepted at the instant the time-zone database gives it (02:30 read as standard time).
    expect(at('P2')).toMatchObject({ ts_utc: '2033-03-13 07:30:00' });
    // A time not in the export's format is quarantined, not guessed.
    expect(at('P5')).toBeUndefined();
    const q = await deps.lake.readManifest('quarantine', 'lms-csv', LANDING);
    expect(q?.stats).toMatchObject({ raw: 6, accepted: 5, quarantined: 1, 'rule:malformed_timestamp': 1 });
  });
});
