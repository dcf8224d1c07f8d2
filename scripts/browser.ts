import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium (or EDLAKE_CHROMIUM), driven by playwright-core: pages and reports are checked in a real browser. */
export function chromiumPath(): string {
  const candidates = [process.env.EDLAKE_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(
    (p): p is string => !!p,
  );
  const found = candidates.find((p) => existsSync(p));
  if (!found)
    throw new Error(
      `no chromium found (tried ${candidates.join(', ')}): install Debian's chromium package or set EDLAKE_CHROMIUM`,
    );
  return found;
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox', '--disable-gpu'] });
}

/** Opens a page, returns the console errors and page errors it raised, and optionally saves a screenshot. */
export async function openPage(
  url: string,
  o: { screenshot?: string; width?: number } = {},
): Promise<{ errors: string[]; svgs: number; title: string; text: string }> {
  const browser = await launchBrowser();
  try {
    const page = await browser.newPage({ viewport: { width: o.width ?? 1200, height: 900 } });
    const errors: string[] = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
    await page.goto(url, { waitUntil: 'load' });
    if (o.screenshot) await page.screenshot({ path: o.screenshot, fullPage: true });
    return {
      errors,
      svgs: await page.locator('svg').count(),
      title: await page.title(),
      text: await page.locator('body').innerText(),
    };
  } finally {
    await browser.close();
  }
}
