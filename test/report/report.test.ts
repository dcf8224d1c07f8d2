import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi } from '../../cli/serve.js';
import { parquetScan } from '../../lake/duck.js';
import { createActivities } from '../../activities/index.js';
import { publishCount } from '../../activities/privacy.js';
import { generate, type GenerateResult } from '../../generator/index.js';
import { createDeps } from '../../workers/deps.js';
import { openPage } from '../../scripts/browser.js';
import { testConfig } from '../helpers.js';

describe('aggregate privacy', () => {
  it('suppresses groups under k and adds seeded Laplace noise when ε is set', () => {
    const exact = testConfig({ EDLAKE_MIN_GROUP_SIZE: '10' });
    expect(publishCount(exact, 9, 'a')).toEqual({ value: null, suppressed: true });
    expect(publishCount(exact, 0, 'a')).toEqual({ value: 0, suppressed: false });
    expect(publishCount(exact, 10, 'a')).toEqual({ value: 10, suppressed: false });
    const noisy = testConfig({ EDLAKE_MIN_GROUP_SIZE: '10', EDLAKE_DP_EPSILON: '0.5' });
    const draws = Array.from({ length: 400 }, (_, i) => publishCount(noisy, 1000, `count-${i}`).value! - 1000);
    expect(publishCount(noisy, 1000, 'same').value).toBe(publishCount(noisy, 1000, 'same').value);
    const mean = draws.reduce((a, b) => a + b, 0) / draws.length;
    const meanAbs = draws.reduce((a, b) => a + Math.abs(b), 0) / draws.length;
    expect(Math.abs(mean)).toBeLessThan(0.6);
    // E|Laplace(1/ε)| = 1/ε = 2
    expect(meanAbs).toBeGreaterThan(1.4);
    expect(meanAbs).toBeLessThan(2.6);
  });
});

const KEYS = [
  { name: 'ms-lee', key: 'educator-key-for-the-tests', role: 'educator', courses: ['MATH101'] },
  { name: 'data-office', key: 'analyst-key-for-the-tests', role: 'analyst', courses: [] },
];

describe('run report and read API', () => {
  const config = testConfig({
    EDLAKE_MIN_GROUP_SIZE: '5',
    EDLAKE_QUIET_HOURS: 'none',
    EDLAKE_MIN_ACTIVE_DAYS: '1',
    EDLAKE_API_KEYS: JSON.stringify(KEYS),
  });
  let gen: GenerateResult;
  let path = '';
  let charts = 0;

  beforeAll(async () => {
    gen = await generate({ out: config.inbox, students: 120, days: 4, start: '2031-09-01', seed: 17 });
    const deps = createDeps(config);
    const a = createActivities(deps);
    for (const [i, date] of gen.dates.entries()) {
      const w = { runId: `r-${date}`, writeId: `w-${date}` };
      await a.landBronzeFiles({ date, runId: w.runId });
      await a.buildSilverTables({ date, ...w });
      await a.alignTimeline({ dates: [date], landingDate: date, ...w });
      await a.buildGoldFeatures({ dates: [date], ...w });
      if (i === 1)
        for (const name of ['risk', 'segments'] as const) {
          const t = await a.trainChallenger({ name, date, reason: 'test' });
          await a.decidePromotion({ name, version: t.version, date });
        }
      if (i >= 1) {
        await a.checkDrift({ date, ...w });
        await a.scoreStudents({ date, ...w });
        await a.decideInterventions({ date, ...w });
      }
    }
    const r = await a.writeRunReport({ date: gen.dates.at(-1)!, runId: 'test' });
    path = r.uri;
    charts = r.charts;
    await deps.duck.close();
  }, 300_000);

  it('renders in headless Chromium with every chart and no console error', async () => {
    expect(charts).toBe(6);
    const page = await openPage(pathToFileURL(path).href);
    expect(page.errors).toEqual([]);
    expect(page.title).toBe(`edlake run report ${gen.dates.at(-1)}`);
    expect(page.svgs).toBeGreaterThanOrEqual(6);
    for (const h of [
      'Data funnel per source',
      'Feature distributions against the training reference',
      'Drift per measure over time',
      'Risk distribution and threshold',
      'Segments',
      'Interventions by kind and status',
      'Fairness of the risk model',
    ])
      expect(page.text).toContain(h);
    expect(page.text).toContain('Groups of fewer than 5 students are suppressed.');
  }, 120_000);

  it('is self-contained and names no student', () => {
    const html = readFileSync(path, 'utf8');
    expect(html).not.toMatch(/<script|<link|src="http|href="http/);
    const roster = readFileSync(join(config.inbox, `dt=${gen.dates[0]}`, 'roster', 'roster.csv'), 'utf8')
      .trim()
      .split('\n')
      .slice(1);
    for (const line of roster) {
      const [id, first, last, email] = line.split(',');
      for (const v of [id!, email!, `${first} ${last}`]) expect(html).not.toContain(v);
    }
  });

  it('edlake report --date prints the path of the written report', async () => {
    const date = gen.dates.at(-1)!;
    const out = await new Promise<{ code: number; stdout: string }>((resolve) => {
      const c = spawn(process.execPath, ['bin/edlake.js', 'report', '--date', date], {
        env: {
          ...process.env,
          EDLAKE_HOME: config.home,
          EDLAKE_LAKE_ROOT: config.lake.kind === 'local' ? config.lake.root : '',
          EDLAKE_MIN_GROUP_SIZE: '5',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      c.on('close', (code) => resolve({ code: code ?? -1, stdout }));
    });
    expect(out.code).toBe(0);
    expect(out.stdout.trim()).toBe(path);
  }, 120_000);

  describe('read API over real HTTP on loopback', () => {
    let app: FastifyInstance;
    let base = '';
    const get = async (url: string, key?: string) => {
      const res = await fetch(`${base}${url}`, key ? { headers: { authorization: `Bearer ${key}` } } : {});
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    let scores: Record<string, unknown>[] = [];
    beforeAll(async () => {
      app = await buildApi(config);
      base = await app.listen({ host: '127.0.0.1', port: 0 });
      const deps = createDeps(config);
      const files = (await deps.lake.localFiles('gold', 'risk_scores', gen.dates.at(-1)!)).paths;
      scores = await deps.duck.withConnection(async (c) =>
        (
          await c.runAndReadAll(`SELECT student_key, course_id FROM ${parquetScan(files)} WHERE risk IS NOT NULL`)
        ).getRowObjects(),
      );
      await deps.duck.close();
    });
    afterAll(async () => app?.close());

    it('refuses requests without a valid key', async () => {
      expect((await get('/v1/segments')).status).toBe(401);
      expect((await get('/v1/segments', 'not-a-key-at-all-really')).status).toBe(401);
    });

    it('gives an educator the risk, reasons and segment of a student in their course, and audits every read', async () => {
      const mine = scores.find((r) => r.course_id === 'MATH101')!;
      const other = scores.find(
        (r) =>
          r.course_id !== 'MATH101' &&
          !scores.some((x) => x.student_key === r.student_key && x.course_id === 'MATH101'),
      )!;
      const ok = await get(`/v1/students/${String(mine.student_key)}/risk`, KEYS[0]!.key);
      expect(ok.status).toBe(200);
      const course = (ok.body.courses as Record<string, unknown>[])[0]!;
      expect(course.course).toBe('MATH101');
      expect(typeof course.risk).toBe('number');
      expect(Array.isArray(course.reasons)).toBe(true);
      expect(course.riskModelVersion).toBeGreaterThanOrEqual(1);
      // Another course's student is not the educator's to read; analysts read no student at all.
      expect((await get(`/v1/students/${String(other.student_key)}/risk`, KEYS[0]!.key)).status).toBe(404);
      expect((await get(`/v1/students/${String(mine.student_key)}/risk`, KEYS[1]!.key)).status).toBe(403);
      // Malformed keys never reach the lake.
      expect((await get(`/v1/students/x'%20OR%201=1--/risk`, KEYS[0]!.key)).status).toBe(400);
      const store = createDeps(config).lake.store;
      const entries = await Promise.all(
        (await store.list('audit/api/')).map(
          async (o) => JSON.parse((await store.getBytes(o.key))!.toString('utf8')) as Record<string, string>,
        ),
      );
      const outcomes = entries.map((e) => `${e.caller}:${e.studentKey}:${e.outcome}`);
      expect(outcomes).toContain(`ms-lee:${String(mine.student_key)}:read`);
      expect(outcomes).toContain(`ms-lee:${String(other.student_key)}:not found in caller courses`);
      expect(outcomes).toContain(`data-office:${String(mine.student_key)}:refused: role`);
    });

    it('serves aggregates with small groups suppressed, a run summary and the OpenAPI document', async () => {
      const seg = await get('/v1/segments', KEYS[1]!.key);
      expect(seg.status).toBe(200);
      expect(seg.body.privacy).toMatch(/fewer than 5 students are suppressed/);
      for (const s of seg.body.segments as { students: number | null; suppressed: boolean }[])
        expect(s.suppressed ? s.students === null : (s.students ?? 0) >= 5).toBe(true);
      const iv = await get('/v1/interventions', KEYS[1]!.key);
      expect(iv.status).toBe(200);
      for (const g of iv.body.groups as { interventions: number | null; suppressed: boolean }[])
        expect(g.suppressed ? g.interventions === null : (g.interventions ?? 0) >= 5).toBe(true);
      const run = await get(`/v1/runs/${gen.dates.at(-1)}`, KEYS[1]!.key);
      expect(run.status).toBe(200);
      expect((run.body.partitions as { dataset: string }[]).some((p) => p.dataset === 'student_features')).toBe(true);
      expect((await get('/v1/runs/1999-01-01', KEYS[1]!.key)).status).toBe(404);
      const doc = await get('/openapi.json');
      expect(doc.status).toBe(200);
      expect(doc.body.openapi).toMatch(/^3\./);
      expect(Object.keys(doc.body.paths as object)).toEqual(
        expect.arrayContaining(['/v1/students/{key}/risk', '/v1/segments', '/v1/runs/{date}', '/v1/interventions']),
      );
    });

    it('never returns a name or an email', async () => {
      const roster = readFileSync(join(config.inbox, `dt=${gen.dates[0]}`, 'roster', 'roster.csv'), 'utf8')
        .trim()
        .split('\n')
        .slice(1);
      const bodies: string[] = [];
      for (const r of scores.filter((x) => x.course_id === 'MATH101').slice(0, 10))
        bodies.push(JSON.stringify((await get(`/v1/students/${String(r.student_key)}/risk`, KEYS[0]!.key)).body));
      bodies.push(JSON.stringify((await get('/v1/segments', KEYS[1]!.key)).body));
      const all = bodies.join('\n');
      for (const line of roster) {
        const [, first, last, email] = line.split(',');
        expect(all).not.toContain(email!);
        expect(all).not.toContain(`${first} ${last}`);
      }
    });
  });
});
