// npm run report:screenshot [-- --date D] [--out docs/report.png]
// Opens a run report in headless Chromium and saves a full-page PNG (the README shows it).
import { pathToFileURL } from 'node:url';
import { join, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { loadConfig } from '../config/index.js';
import { createLake } from '../lake/lake.js';
import { reportKey } from '../activities/report/index.js';
import { openPage } from './browser.js';

const arg = (name: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const config = loadConfig();
const lake = createLake(config);
const date = arg('date') ?? (await lake.listPartitions('gold', 'student_features')).at(-1);
if (!date) throw new Error('no nightly run in this lake yet: run npm start first');
const local = await lake.store.localCopy(reportKey(date));
const out = resolve(arg('out') ?? join('docs', 'report.png'));
mkdirSync(resolve(out, '..'), { recursive: true });
const r = await openPage(pathToFileURL(local).href, { screenshot: out });
if (r.errors.length) throw new Error(`the report raised errors in Chromium: ${r.errors.join('; ')}`);
console.log(`${out} (${r.svgs} charts, report of ${date})`);
