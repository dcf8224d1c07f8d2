import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
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

describe('run report', () => {
  const config = testConfig({ EDLAKE_MIN_GROUP_SIZE: '5', EDLAKE_QUIET_HOURS: 'none', EDLAKE_MIN_ACTIVE_DAYS: '1' });
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
});
