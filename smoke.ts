import { createActivities } from '/work/main/activities/index.js';
import { generate } from '/work/main/generator/index.js';
import { createDeps } from '/work/main/workers/deps.js';
import { loadConfig } from '/work/main/config/index.js';
import { rmSync } from 'node:fs';
rmSync('/tmp/smoke/h', { recursive: true, force: true });
const config = loadConfig({ ...process.env, EDLAKE_HOME: '/tmp/smoke/h' });
const deps = createDeps(config);
const acts = createActivities(deps);
const gen = await generate({ out: config.inbox, students: Number(process.argv[2] ?? 60), days: Number(process.argv[3] ?? 5), start: '2026-03-02', seed: 7 });
let bad = 0;
for (const date of gen.dates) {
  const t = Date.now();
  await acts.landBronzeFiles({ date, runId: 'r' });
  const s = await acts.buildSilverTables({ date, runId: 'r', writeId: 'run-r' });
  for (const r of s.reconciliation) {
    const e = gen.expected[date]?.[r.source];
    if (!e) { if (r.raw) console.log('no expectation', date, r.source, r); continue; }
    const got = { raw: r.raw, accepted: r.accepted, duplicates: r.duplicates, quarantined: r.quarantined, late: r.late, byRule: Object.fromEntries(Object.entries(r.byRule).sort()) };
    const exp = { raw: e.raw, accepted: e.accepted, duplicates: e.duplicates, quarantined: e.quarantined, late: e.late, byRule: Object.fromEntries(Object.entries(e.byRule).sort()) };
    if (JSON.stringify(got) !== JSON.stringify(exp)) { bad++; console.log(date, r.source, '\n got', JSON.stringify(got), '\n exp', JSON.stringify(exp)); }
  }
  console.log(date, 'silver ms', Date.now() - t, 'touched', s.touchedDates.join(','));
}
console.log('mismatches', bad);
await deps.duck.close();
