/**
 * A report page opened in Debian's headless Chromium (puppeteer-core): every request but the page itself is
 * blocked and counted, console errors and page errors collected, and for each chart the pixels drawn in its
 * series' own colours counted on its canvas (axes and grid are grey: only plotted data has those colours).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';

export const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p)) ?? null;

export interface ChartCheck {
  title: string;
  series: number;
  points: number;
  /** canvas pixels in one of the chart's series colours */
  dataPixels: number;
}

export interface PageCheck {
  /** requests other than the page itself (all blocked) */
  blocked: string[];
  errors: string[];
  charts: ChartCheck[];
  /** "none in this capture" boxes */
  empty: string[];
  /** ms from navigation to the page's script done (window.__tsvsReady) */
  readyMs: number;
}

export async function openReport(file: string, screenshot?: string): Promise<PageCheck> {
  if (!CHROMIUM) throw new Error('no chromium');
  const { default: puppeteer } = await import('puppeteer-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tsvs-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: profile,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
    const url = pathToFileURL(path.resolve(file)).href;
    const blocked: string[] = [];
    const errors: string[] = [];
    await page.setRequestInterception(true);
    page.on('request', (r) => {
      if (r.url() === url) void r.continue();
      else {
        blocked.push(r.url());
        void r.abort();
      }
    });
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    page.on('pageerror', (e) => errors.push(String(e)));
    const t0 = Date.now();
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction('window.__tsvsReady === true', { timeout: 30_000 });
    const readyMs = Date.now() - t0;
    const out = (await page.evaluate(IN_PAGE)) as { charts: ChartCheck[]; empty: string[] };
    if (screenshot) await page.screenshot({ path: screenshot as `${string}.png`, fullPage: true });
    return { blocked, errors, charts: out.charts, empty: out.empty, readyMs };
  } finally {
    await browser.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

/** run in the page (a string: the test's TypeScript has no DOM types) */
const IN_PAGE = `(() => {
  const hex = (c) => [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16));
  const boxes = [...document.querySelectorAll('.chart')];
  const meta = window.__tsvsReport.charts;
  const charts = boxes.filter((b) => b.getAttribute('data-colors')).map((b, i) => {
    const colors = b.getAttribute('data-colors').split(' ').map(hex);
    const cv = b.querySelector('canvas');
    const px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
    let n = 0;
    for (let j = 0; j < px.length; j += 4) {
      if (px[j + 3] < 200) continue;
      for (const c of colors) {
        if (Math.abs(px[j] - c[0]) + Math.abs(px[j + 1] - c[1]) + Math.abs(px[j + 2] - c[2]) < 24) { n++; break; }
      }
    }
    return { ...meta[i], dataPixels: n };
  });
  const empty = boxes.filter((b) => !b.getAttribute('data-colors')).map((b) => b.textContent);
  return { charts, empty };
})()`;
