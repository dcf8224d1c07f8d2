import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { describe, expect, it } from 'vitest';
import { cleanSource } from '../../activities/silver/engine.js';
import { sourceKinds } from '../../activities/sources.js';
import { loadSourceDefinitions } from '../../config/source-definition.js';
import { tempDir } from '../helpers.js';

describe('source definitions as data', () => {
  it('declares every event source kind; roster is read by its own loader', () => {
    const defs = loadSourceDefinitions();
    expect([...defs.keys(), 'roster'].sort()).toEqual([...sourceKinds()].sort());
  });

  it('rejects a bad definition naming the file and key', () => {
    const dir = tempDir('defs');
    writeFileSync(join(dir, 'broken.json'), JSON.stringify({ name: 'broken', description: '', format: 'xml' }));
    expect(() => loadSourceDefinitions(dir)).toThrow(/^source definition broken\.json: format: /);
  });

  it('onboards a new CSV export by writing a definition, with its own timestamp format and zone', async () => {
    const dir = tempDir('onboard');
    mkdirSync(join(dir, 'defs'));
    writeFileSync(
      join(dir, 'defs', 'mooc-csv.json'),
      JSON.stringify({
        name: 'mooc-csv',
        description: 'A MOOC platform export',
        format: 'csv',
        modality: 'practice',
        fields: {
          quiz: { path: '$.quiz', type: 'VARCHAR', required: true },
          points: { path: '$.points', type: 'DOUBLE', min: 0, max: 10 },
        },
        timestamp: { path: '$.when', format: '%d/%m/%Y %H:%M', timezone: 'Europe/Berlin' },
        identity: [{ path: '$.learner', kind: 'email' }],
      }),
    );
    const def = loadSourceDefinitions(join(dir, 'defs')).get('mooc-csv')!;
    const csv = join(dir, 'export.csv');
    writeFileSync(
      csv,
      [
        'learner,when,quiz,points',
        'Ada@Example.edu,14/07/2026 10:30,q1,7',
        'ada@example.edu,14/07/2026 10:30,q1,7',
        'bob@example.edu,14/07/2026 11:00,q2,5',
        'ada@example.edu,2026-07-14,q3,4',
        'ada@example.edu,14/07/2026 12:00,,3',
        'ada@example.edu,14/07/2026 12:30,q4,11',
      ].join('\n'),
    );
    const db = await DuckDBInstance.create(':memory:');
    const conn = await db.connect();
    await conn.run(`SET TimeZone = 'UTC'`);
    await conn.run(`CREATE TEMP TABLE ids AS SELECT 'email:ada@example.edu' AS identity, 'key-ada' AS student_key`);
    await conn.run(`CREATE TEMP TABLE enr (student_key VARCHAR, course_id VARCHAR, start_date DATE, end_date DATE)`);
    await conn.run(`CREATE TEMP TABLE seen (event_id VARCHAR)`);
    const rec = await cleanSource(
      conn,
      def,
      [{ key: 'bronze/mooc-csv/dt=2026-07-14/x-export.csv', path: csv }],
      {
        date: '2026-07-14',
        futureBound: '2026-07-15T00:15:00Z',
        identities: 'ids',
        enrolments: 'enr',
        seen: () => Promise.resolve('seen'),
        names: new Set<string>(),
      },
      'm',
    );
    expect(rec).toMatchObject({ raw: 6, accepted: 1, duplicates: 1, quarantined: 4 });
    expect(rec.byRule).toEqual({ unknown_student: 1, malformed_timestamp: 1, missing_required: 1, out_of_range: 1 });
    const clean = (
      await conn.runAndReadAll(
        `SELECT student_key, strftime(ts_utc, '%Y-%m-%d %H:%M') AS ts, ts_offset_minutes, quiz, points FROM m_clean`,
      )
    ).getRowObjectsJson();
    expect(clean).toEqual([
      { student_key: 'key-ada', ts: '2026-07-14 08:30', ts_offset_minutes: 120, quiz: 'q1', points: 7 },
    ]);
    const q = (
      await conn.runAndReadAll(`SELECT line_no, rule, field, reason FROM m_quarantine ORDER BY line_no`)
    ).getRowObjectsJson();
    expect(q).toEqual([
      { line_no: '4', rule: 'unknown_student', field: 'identity', reason: 'student identity matches no roster entry' },
      {
        line_no: '5',
        rule: 'malformed_timestamp',
        field: 'timestamp',
        reason: 'timestamp "2026-07-14" is not in the format %d/%m/%Y %H:%M',
      },
      { line_no: '6', rule: 'missing_required', field: 'quiz', reason: 'required field quiz is missing or empty' },
      { line_no: '7', rule: 'out_of_range', field: 'points', reason: 'field points "11" is outside [0, 10]' },
    ]);
    conn.closeSync();
    db.closeSync();
  });
});
