#!/usr/bin/env node
// Open one Label Studio task in headless Debian Chromium and report what the editor shows.
//
//   node open_task.mjs LS_URL USERNAME PASSWORD PROJECT_ID TASK_ID SCREENSHOT.png
//        [--submit] [--select-region] [--expect-regions N] [--expect-control NAME=VALUE]...
//        [--step-timeout-ms MS] [--curve]
//
// Prints exactly one JSON line on stdout (the report; progress goes to stderr) and exits 0 when every
// step worked, 1 when a step failed (the report then has "ok": false, "failed_step" and "error", and a
// screenshot is still attempted), 2 on bad arguments.
//
// Steps, each with its own time limit (--step-timeout-ms, default 60 s): launch -> login (the form at
// /user/login/) -> open /projects/P/data?task=T -> editor (.lsf-editor) -> media (video: the canvas
// loader is gone and the <video> has data; image: the <img> decoded) -> settle (one carousel tab per
// annotation/prediction of the task; if some are missing the page is reloaded once, see below) ->
// regions (outliner; --expect-regions waits for that count) -> [select_region: click the first region,
// which shows its per-region Number controls] -> [controls: --expect-control waits for input values]
// -> screenshot (controls scrolled into view) -> [submit: click Submit/Update, wait for the API answer].
// --curve (a TimeSeries synced with the Video): a taller window; after the regions, the 'curve' step reads
// each MultiChannel plot (legends, every drawn line as points, the playhead), then checks the sync both ways:
// "Hop forward" on the video, then a click at 75% of the first plot's width (report.curve).
// Requests to any origin other than LS_URL are aborted (the machine is offline; Label Studio's pages
// try to reach Sentry), and failures of such requests are not counted as errors.
//
// Known 1.23.2 quirk: under load the editor sometimes mounts a task without its predictions (no
// prediction tab, empty controls); a reload fixes it. The report's "warnings" say when that happened.
import { chromium } from 'playwright-core';

const USAGE =
  'usage: node open_task.mjs LS_URL USERNAME PASSWORD PROJECT_ID TASK_ID SCREENSHOT.png ' +
  '[--submit] [--select-region] [--expect-regions N] [--expect-control NAME=VALUE]... [--step-timeout-ms MS] [--curve]';
const CHROMIUM = process.env.MTCLAR_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Selectors of the Label Studio 1.23.2 editor (checked against the running app).
const SEL = {
  loginEmail: '#email',
  loginPassword: '#password',
  loginButton: 'form#login-form button[type="submit"]',
  editor: '.lsf-editor',
  videoLoading: '.lsf-video-canvas__loading',
  outliner: '.lsf-outliner',
  region: '.lsf-outliner-tree [role="treeitem"]',
  annotationTab: '.lsf-annotations-carousel .lsf-annotation-button',
  regionTitle: '.lsf-outliner-item__title',
  namedControl: '.lsf-editor input[type="range"][name], .lsf-editor input[type="number"][name]',
  // "Submit" (new annotation) and "Update" (existing one) share name="submit"; test ids differ.
  submit: 'button[data-testid="bottombar-submit-button"], button[data-testid="bottombar-update-button"], button[name="submit"]',
};

function parseArgs(argv) {
  const positional = [];
  const opts = { submit: false, selectRegion: false, expectRegions: null, expectControls: {}, stepTimeoutMs: 60000, curve: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--submit') opts.submit = true;
    else if (arg === '--select-region') opts.selectRegion = true;
    else if (arg === '--curve') opts.curve = true;
    else if (arg === '--expect-regions') opts.expectRegions = Number(argv[++i]);
    else if (arg === '--step-timeout-ms') opts.stepTimeoutMs = Number(argv[++i]);
    else if (arg === '--expect-control') {
      const [name, ...value] = String(argv[++i] ?? '').split('=');
      if (!name || !value.length) throw new Error('--expect-control needs NAME=VALUE');
      opts.expectControls[name] = value.join('=');
    }
    else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`);
    else positional.push(arg);
  }
  if (positional.length !== 6) throw new Error(`expected 6 arguments, got ${positional.length}`);
  const [lsUrl, username, password, project, task, screenshot] = positional;
  if (!/^\d+$/.test(project) || !/^\d+$/.test(task)) throw new Error('PROJECT_ID and TASK_ID must be integers');
  if (opts.expectRegions !== null && !Number.isInteger(opts.expectRegions)) throw new Error('--expect-regions needs an integer');
  if (!(opts.stepTimeoutMs > 0)) throw new Error('--step-timeout-ms needs a positive number');
  return { lsUrl: lsUrl.replace(/\/+$/, ''), username, password, project: Number(project), task: Number(task), screenshot, ...opts };
}

const log = (...parts) => process.stderr.write(`[open_task ${new Date().toISOString().slice(11, 23)}] ${parts.join(' ')}\n`);

// Console errors that say nothing about the editor: blocked third-party requests and a 404 the
// 1.23.2 frontend always causes (/heidi-tips).
// A page error of 1.23.2 itself: a synced TimeSeries created before the annotation store is initialised has
// no sync manager, and its first automatic seek (setting the initial zoom) throws. Seeking works afterwards.
function isKnownPageError(stack) {
  return /reading 'sync'/.test(stack) && /syncSend/.test(stack) && /emitSeekSync/.test(stack) && /updateValue/.test(stack);
}

function isBenignConsoleError(text, url, origin) {
  if (!/Failed to load resource/.test(text)) return false;
  if (url && !url.startsWith(origin)) return true;
  return Boolean(url && new URL(url).pathname.startsWith('/heidi-tips'));
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  const origin = new URL(args.lsUrl).origin;
  const report = {
    ok: false, url: null, project: args.project, task: args.task, failed_step: null, error: null,
    timings_ms: {}, editor_loaded: false, media: null, frame_count: null, regions: null,
    region_labels: [], selected_region: false, controls: {}, controls_visible: false, submit_button: null, submitted: null,
    console_errors: [], fatal_errors: [], page_errors: [], failed_requests: [], http_errors: [],
    screenshot: null, warnings: [], known_page_errors: [], curve: null,
  };
  const started = Date.now();
  let browser;
  let page;
  let step = 'launch';
  const timed = async (name, fn) => {
    step = name;
    log(`step ${name}`);
    const t0 = Date.now();
    const value = await fn();
    report.timings_ms[name] = Date.now() - t0;
    return value;
  };

  try {
    browser = await timed('launch', () =>
      chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true, timeout: args.stepTimeoutMs }));
    const context = await browser.newContext({ viewport: { width: 1600, height: args.curve ? 1750 : 1200 } });
    context.setDefaultTimeout(args.stepTimeoutMs);
    context.setDefaultNavigationTimeout(args.stepTimeoutMs);
    await context.route((url) => url.origin !== origin, (route) => route.abort('blockedbyclient'));
    page = await context.newPage();
    page.on('console', (msg) => {
      if (msg.type() !== 'error') return;
      const url = msg.location()?.url || '';
      const entry = { text: msg.text().slice(0, 500), url };
      report.console_errors.push(entry);
      if (!isBenignConsoleError(entry.text, url, origin)) report.fatal_errors.push(entry);
    });
    page.on('pageerror', (err) => {
      const entry = { text: String(err?.stack || err).slice(0, 1000), url: page.url() };
      if (isKnownPageError(String(err?.stack || ''))) {
        report.known_page_errors.push(entry);
        return;
      }
      report.page_errors.push(entry);
      report.fatal_errors.push(entry);
    });
    page.on('requestfailed', (req) => {
      const error = req.failure()?.errorText;
      // ERR_ABORTED: requests cancelled by a navigation (the app's own page changes), not failures.
      if (req.url().startsWith(origin) && error !== 'net::ERR_ABORTED') report.failed_requests.push({ url: req.url(), error });
    });
    page.on('response', (res) => {
      if (res.status() >= 400 && res.url().startsWith(origin) && !new URL(res.url()).pathname.startsWith('/heidi-tips')) {
        report.http_errors.push({ method: res.request().method(), status: res.status(), url: res.url() });
      }
    });

    await timed('login', async () => {
      await page.goto(`${args.lsUrl}/user/login/`, { waitUntil: 'domcontentloaded' });
      await page.fill(SEL.loginEmail, args.username);
      await page.fill(SEL.loginPassword, args.password);
      // The form POST always navigates: to "/" (or ?next=) on success, back to the form on failure.
      await Promise.all([
        page.waitForNavigation({ waitUntil: 'domcontentloaded' }),
        page.click(SEL.loginButton),
      ]);
      if (new URL(page.url()).pathname.startsWith('/user/login')) {
        const text = await page.locator('form#login-form').innerText().catch(() => '');
        throw new Error(`login as ${args.username} failed (still on ${page.url()}): ${text.replace(/\s+/g, ' ').slice(0, 300)}`);
      }
    });

    // The editor is built from the task JSON the data manager fetches (/api/tasks/T?project=P).
    const taskUrl = new RegExp(`/api/tasks/${args.task}(\\?|$)`);
    let taskJson = null;
    page.on('response', async (res) => {
      if (taskJson === null && taskUrl.test(res.url()) && res.request().method() === 'GET' && res.ok()) {
        taskJson = await res.json().catch(() => null);
      }
    });

    // Under load the 1.23.2 editor sometimes mounts the task without its predictions (the carousel then
    // lacks their tabs and the controls stay empty, or the outliner lacks the annotation's regions); one
    // reload fixes it, so open at most twice. Every reload is reported in `warnings`.
    for (let attempt = 1; attempt <= 2; attempt++) {
      taskJson = null;
      await timed(attempt === 1 ? 'open' : 'reopen', async () => {
        const target = `${args.lsUrl}/projects/${args.project}/data?task=${args.task}`;
        const response = await page.goto(target, { waitUntil: 'domcontentloaded' });
        if (!response || response.status() >= 400) throw new Error(`GET ${target} -> ${response?.status()}`);
        report.url = page.url();
      });

      await timed('editor', async () => {
        // Fail fast when the task itself cannot be loaded instead of waiting for the editor to time out.
        const taskFailed = page
          .waitForResponse((res) => taskUrl.test(res.url()) && res.status() >= 400, { timeout: 0 })
          .then((res) => { throw new Error(`GET ${res.url()} -> ${res.status()}: the task cannot be loaded`); });
        taskFailed.catch(() => {}); // settled by the race below or never
        await Promise.race([page.waitForSelector(SEL.editor, { state: 'visible' }), taskFailed]);
        report.editor_loaded = true;
      });

      report.media = await timed('media', async () => {
        // The editor draws video frames on a canvas; the <video> element itself is outside the editor.
        await page.waitForFunction(
          (sel) => {
            const editor = document.querySelector(sel.editor);
            if (!editor) return false;
            const videos = [...document.querySelectorAll('video')];
            if (editor.querySelector('.lsf-video, .lsf-video-segmentation')) {
              return !document.querySelector(sel.videoLoading) && videos.some((v) => v.readyState >= 2 && v.duration > 0);
            }
            const imgs = [...editor.querySelectorAll('img')].filter((img) => img.getAttribute('src'));
            return imgs.length > 0 && imgs.every((img) => img.complete && img.naturalWidth > 0);
          },
          SEL,
          { polling: 250, timeout: args.stepTimeoutMs },
        ).catch(async (err) => {
          const state = await describeMedia(page).catch(() => null);
          throw new Error(`media did not load: ${JSON.stringify(state)} (${err.message.split('\n')[0]})`);
        });
        return describeMedia(page);
      });

      const settled = await timed('settle', async () => {
        // One carousel tab per annotation (or the draft when there is none) and per prediction.
        const annotations = taskJson?.annotations?.length ?? 0;
        const predictions = taskJson?.predictions?.length ?? 0;
        report.expected_tabs = Math.max(1, annotations) + predictions;
        const ok = await page.waitForFunction(
          ([sel, n]) => document.querySelectorAll(sel).length >= n,
          [SEL.annotationTab, report.expected_tabs],
          { polling: 250, timeout: Math.min(args.stepTimeoutMs, 15000) },
        ).then(() => true, () => false);
        report.annotation_tabs = await page.locator(SEL.annotationTab).count();
        await page.waitForTimeout(500); // let the selected annotation's regions and controls mount
        if (!ok || args.expectRegions === null) return ok;
        // The same race can leave the selected annotation without its regions in the outliner.
        const regionsOk = await page.waitForFunction(
          ([sel, n]) => document.querySelectorAll(sel).length === n,
          [SEL.region, args.expectRegions],
          { polling: 250, timeout: Math.min(args.stepTimeoutMs, 15000) },
        ).then(() => true, () => false);
        if (!regionsOk) {
          report.warnings.push(`attempt ${attempt}: the outliner lists ${await page.locator(SEL.region).count()} ` +
            `regions, expected ${args.expectRegions}${attempt === 1 ? '; reloading' : ''}`);
        }
        return regionsOk ? true : 'regions';
      });
      if (settled === true) break;
      if (settled === 'regions') continue;
      report.warnings.push(
        `attempt ${attempt}: the editor shows ${report.annotation_tabs} annotation/prediction tabs, ` +
        `the task has ${report.expected_tabs}${attempt === 1 ? '; reloading' : ''}`);
    }
    report.frame_count = await page.evaluate(() => {
      const match = document.querySelector('.lsf-editor')?.innerText.match(/\b\d+\s+of\s+(\d+)\b/);
      return match ? Number(match[1]) : null;
    });

    await timed('regions', async () => {
      await page.waitForSelector(SEL.outliner, { state: 'visible' });
      if (args.expectRegions !== null) {
        await page.waitForFunction(
          ([sel, n]) => document.querySelectorAll(sel).length === n,
          [SEL.region, args.expectRegions],
          { polling: 250, timeout: args.stepTimeoutMs },
        ).catch(async () => {
          throw new Error(`expected ${args.expectRegions} regions, the outliner lists ${await page.locator(SEL.region).count()}`);
        });
      }
      report.regions = await page.locator(SEL.region).count();
      report.region_labels = (await page.locator(`${SEL.region} ${SEL.regionTitle}`).allInnerTexts()).map((t) => t.trim());
    });

    if (args.selectRegion && report.regions > 0) {
      await timed('select_region', async () => {
        await page.locator(SEL.region).first().click();
        await page.waitForSelector(SEL.namedControl, { state: 'attached' });
        report.selected_region = true;
      });
    }
    // Named <input type=range|number> are the Number tags (name = the tag's name); per-region ones
    // only exist while a region is selected.
    const readControls = () => page.evaluate((sel) =>
      Object.fromEntries([...document.querySelectorAll(sel)].map((input) => [input.name, input.value])), SEL.namedControl);
    if (Object.keys(args.expectControls).length) {
      await timed('controls', () => page.waitForFunction(
        ([sel, expected]) => {
          const inputs = [...document.querySelectorAll(sel)];
          return Object.entries(expected).every(([name, value]) => inputs.some((i) => i.name === name && i.value === value));
        },
        [SEL.namedControl, args.expectControls],
        { polling: 250, timeout: args.stepTimeoutMs },
      ).catch(async () => {
        throw new Error(`expected controls ${JSON.stringify(args.expectControls)}, the editor shows ${JSON.stringify(await readControls())}`);
      }));
    }
    report.controls = await readControls();

    if (args.curve) report.curve = await timed('curve', () => checkCurve(page, args.stepTimeoutMs));

    // Video-mode Number controls sit below the timeline: bring them into the screenshot.
    const lastControl = page.locator(SEL.namedControl).last();
    report.controls_visible = (await lastControl.count()) > 0 && await lastControl
      .scrollIntoViewIfNeeded({ timeout: 5000 }).then(() => lastControl.isVisible()).catch(() => false);
    report.submit_button = await page.locator(SEL.submit).first().innerText({ timeout: 5000 }).then((t) => t.trim()).catch(() => null);
    await timed('screenshot', async () => {
      await page.screenshot({ path: args.screenshot });
      report.screenshot = args.screenshot;
    });

    if (args.submit) {
      report.submitted = await timed('submit', async () => {
        const button = page.locator(SEL.submit).first();
        await button.waitFor({ state: 'visible' });
        if (await button.isDisabled()) throw new Error(`the ${report.submit_button} button is disabled (invalid or unchanged annotation?)`);
        const isSave = (res) =>
          (res.request().method() === 'POST' && new RegExp(`/api/tasks/${args.task}/annotations`).test(res.url())) ||
          (res.request().method() === 'PATCH' && /\/api\/annotations\/\d+/.test(res.url()));
        const [response] = await Promise.all([page.waitForResponse(isSave), button.click()]);
        let body = null;
        try { body = await response.json(); } catch { /* not JSON */ }
        const saved = {
          method: response.request().method(), status: response.status(), annotation_id: body?.id ?? null,
          result_count: Array.isArray(body?.result) ? body.result.length : null,
        };
        if (response.status() >= 300) throw Object.assign(new Error(`saving the annotation -> ${response.status()}: ${JSON.stringify(body).slice(0, 300)}`), { saved });
        await page.waitForTimeout(500);
        return saved;
      });
    }

    report.ok = report.fatal_errors.length === 0;
    if (!report.ok) {
      report.failed_step = 'console';
      report.error = `${report.fatal_errors.length} fatal console/page error(s), first: ${report.fatal_errors[0].text}`;
    }
  } catch (err) {
    report.ok = false;
    report.failed_step = step;
    // eslint-disable-next-line no-control-regex
    report.error = String(err?.message || err).replace(/\u001b\[[0-9;]*m/g, '').split('\n').slice(0, 6).join(' | ');
    if (report.http_errors.length) {
      report.error += ` (HTTP errors: ${report.http_errors.slice(0, 2).map((e) => `${e.method} ${e.url} -> ${e.status}`).join(', ')})`;
    }
    if (err?.saved) report.submitted = err.saved;
    log(`step ${step} failed: ${report.error}`);
    if (page && !report.screenshot) {
      await page.screenshot({ path: args.screenshot, timeout: 10000 }).then(() => { report.screenshot = args.screenshot; }).catch(() => {});
    }
    if (page) report.url = page.url();
  } finally {
    report.timings_ms.total = Date.now() - started;
    if (browser) await browser.close().catch(() => {});
  }
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(report.ok ? 0 : 1);
}

const CURVE_SEL = {
  plot: '.htx-timeseries-multichannel',
  line: '.htx-timeseries-channel svg g[clip-path] > path',
  hopForward: 'button[aria-label="Hop forward"]',
};

// Each MultiChannel plot as drawn: legends, the lines (their points in SVG units), the playhead's x.
function readCurve(page) {
  return page.evaluate((sel) => {
    const video = document.querySelector('video');
    const plots = [...document.querySelectorAll(sel.plot)].map((plot) => {
      const svg = plot.querySelector('.htx-timeseries-channel svg');
      const clip = svg?.querySelector('clipPath rect');
      const lines = [...plot.querySelectorAll(sel.line)]
        .filter((path) => (path.getAttribute('d') || '').length > 4 && path.getAttribute('stroke') !== 'none')
        .map((path) => ({
          stroke: path.getAttribute('stroke'),
          points: path.getAttribute('d').slice(1).split('L').map((xy) => xy.split(',').map(Number)),
        }));
      const playhead = svg?.querySelector('g.playhead');
      const shift = playhead?.getAttribute('transform')?.match(/translate\(([-\d.e]+)/);
      return {
        legends: [...plot.querySelectorAll('.channel-name')].map((e) => e.textContent.trim()),
        width: clip ? Number(clip.getAttribute('width')) : null,
        lines,
        playhead_x: playhead && playhead.style.display !== 'none' && shift ? Number(shift[1]) : null,
      };
    });
    return { video_time: video ? video.currentTime : null, video_duration: video ? video.duration : null, plots };
  }, CURVE_SEL);
}

async function checkCurve(page, timeout) {
  await page.waitForFunction((sel) => document.querySelectorAll(sel.line).length > 0 &&
    [...document.querySelectorAll(sel.line)].some((p) => (p.getAttribute('d') || '').length > 20), CURVE_SEL,
  { polling: 250, timeout });
  const loaded = await readCurve(page);
  // video -> curve: the video's own control moves it; the curve's playhead must follow
  for (let i = 0; i < 3; i++) await page.locator(CURVE_SEL.hopForward).first().click();
  await page.waitForTimeout(1000);
  const afterVideoSeek = await readCurve(page);
  // curve -> video: a click at 75% of the first plot's width seeks the video there
  const svg = page.locator('.htx-timeseries-channel svg').first();
  await svg.scrollIntoViewIfNeeded();
  const box = await svg.boundingBox();
  const plot = loaded.plots[0];
  const viewBox = (await svg.getAttribute('viewBox')).split(',').map(Number);
  const unit = box.width / viewBox[2];
  const margin = await svg.locator('g').first().getAttribute('transform');
  const left = Number(margin.match(/translate\(([-\d.]+)/)[1]);
  await page.mouse.click(box.x + (left + 0.75 * plot.width) * unit, box.y + box.height / 2);
  await page.waitForTimeout(1000);
  const afterCurveClick = await readCurve(page);
  return { loaded, after_video_seek: afterVideoSeek, clicked_fraction: 0.75, after_curve_click: afterCurveClick };
}

async function describeMedia(page) {
  return page.evaluate(() => {
    const editor = document.querySelector('.lsf-editor');
    const videos = [...document.querySelectorAll('video')].map((v) => ({
      src: v.currentSrc || v.getAttribute('src'), ready_state: v.readyState, duration: v.duration,
      width: v.videoWidth, height: v.videoHeight, error: v.error ? v.error.code : null,
    }));
    const images = editor ? [...editor.querySelectorAll('img')].filter((img) => img.getAttribute('src')).map((img) => ({
      src: img.currentSrc || img.getAttribute('src'), complete: img.complete, width: img.naturalWidth, height: img.naturalHeight,
    })) : [];
    return {
      kind: editor?.querySelector('.lsf-video, .lsf-video-segmentation') ? 'video' : images.length ? 'image' : 'unknown',
      loading_indicator: Boolean(document.querySelector('.lsf-video-canvas__loading')),
      video_canvas: Boolean(editor?.querySelector('.lsf-video-canvas canvas')),
      videos,
      images,
    };
  });
}

main().catch((err) => {
  process.stderr.write(`open_task crashed: ${err?.stack || err}\n`);
  process.stdout.write(`${JSON.stringify({ ok: false, failed_step: 'crash', error: String(err?.message || err) })}\n`);
  process.exit(1);
});
