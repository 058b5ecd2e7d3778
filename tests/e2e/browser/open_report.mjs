#!/usr/bin/env node
// Open the backend's project report (/report?project=N) in headless Debian Chromium and say what rendered.
//
//   node open_report.mjs REPORT_URL SCREENSHOT.png [--timeout-ms MS]
//
// Prints one JSON line on stdout: {ok, status, title, images: [{alt, complete, naturalWidth, naturalHeight}],
// tables: {id: rows}, not_ready, page_errors, error}; a full-page screenshot is written. Exit 0 when the
// page loaded (checks are the caller's), 1 when it did not, 2 on bad arguments. Only the report's origin
// is reachable; other requests are aborted.
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.MTCLAR_CHROMIUM || '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'];

const argv = process.argv.slice(2);
const positional = [];
let timeoutMs = 60000;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--timeout-ms') timeoutMs = Number(argv[++i]);
  else positional.push(argv[i]);
}
if (positional.length !== 2 || !(timeoutMs > 0)) {
  process.stderr.write('usage: node open_report.mjs REPORT_URL SCREENSHOT.png [--timeout-ms MS]\n');
  process.exit(2);
}
const [url, screenshot] = positional;
const report = { ok: false, status: null, images: [], tables: {}, not_ready: 0, page_errors: [] };
const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const origin = new URL(url).origin;
  await page.route('**/*', (route) => (route.request().url().startsWith(origin) || route.request().url().startsWith('data:')
    ? route.continue() : route.abort()));
  page.on('pageerror', (error) => report.page_errors.push(String(error)));
  const response = await page.goto(url, { waitUntil: 'load', timeout: timeoutMs });
  report.status = response ? response.status() : null;
  await page.waitForFunction(() => [...document.images].every((img) => img.complete), null, { timeout: timeoutMs });
  Object.assign(report, await page.evaluate(() => ({
    title: document.title,
    images: [...document.images].map((img) => ({
      alt: img.alt, complete: img.complete, naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight,
    })),
    tables: Object.fromEntries([...document.querySelectorAll('table[id]')].map((t) => [t.id, t.tBodies[0]?.rows.length ?? 0])),
    not_ready: document.querySelectorAll('.not-ready').length,
  })));
  await page.screenshot({ path: screenshot, fullPage: true });
  report.ok = true;
} catch (error) {
  report.error = String(error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(report) + '\n');
process.exit(report.ok ? 0 : 1);
