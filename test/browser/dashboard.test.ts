/**
 * Example 09's dashboard in a real browser: Node-RED as a process (test/helpers/
 * node-red-process.ts) with this package and FlowFuse Dashboard 2 (a devDependency, linked
 * into the user directory) installed, example 09 deployed as its flow file, and the page
 * /dashboard/site opened in headless Chromium through playwright-core (which Chromium:
 * test/helpers/chromium.ts). It checks that each asset's chart draws its two lines (canvas
 * pixels in the colours of the series), that the table has a row per asset with its state
 * and setpoint, and that the site's totals and last event show; then it takes a screenshot,
 * dashboard.png, into a temporary directory, or docs/images/ (the README's picture) when
 * QE_SCREENSHOTS=docs.
 *
 * Needs the build (`npm test` builds first). Every wait is bounded (waits for a state of the
 * page, never for a time).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import should from 'should';
import { CHROMIUM_FLAGS, findChromium } from '../helpers/chromium';
import { NodeRedProcess } from '../helpers/node-red-process';

const root = path.join(__dirname, '../..');
const FILE = '09 Dashboard (FlowFuse Dashboard 2).json';
const DASHBOARD = '@flowfuse/node-red-dashboard';
const IMAGES =
  process.env.QE_SCREENSHOTS === 'docs'
    ? path.join(root, 'docs/images')
    : fs.mkdtempSync(path.join(os.tmpdir(), 'qe-screens-'));
/** The longest that any one wait of this file lasts. */
const WAIT_MS = 30_000;

/**
 * In the page: how many pixels of each canvas are near one of `colours` (hex), per canvas.
 * A series' colour appears in its line and its legend icon; a line across the chart is
 * hundreds of pixels.
 */
function colouredPixels(colours: string[]): number[][] {
  const rgb = colours.map((c) => [1, 3, 5].map((i) => Number.parseInt(c.slice(i, i + 2), 16)));
  return [...document.querySelectorAll('canvas')].map((canvas) => {
    const ctx = (canvas as HTMLCanvasElement).getContext('2d');
    if (!ctx || canvas.width === 0 || canvas.height === 0) return rgb.map(() => 0);
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const counts = rgb.map(() => 0);
    for (let p = 0; p < data.length; p += 4) {
      rgb.forEach((c, k) => {
        const d =
          Math.abs((data[p] as number) - (c[0] as number)) +
          Math.abs((data[p + 1] as number) - (c[1] as number)) +
          Math.abs((data[p + 2] as number) - (c[2] as number));
        if (d < 40 && (data[p + 3] as number) > 200) counts[k] = (counts[k] as number) + 1;
      });
    }
    return counts;
  });
}

describe('example 09: the FlowFuse Dashboard 2 page in a real browser', function () {
  this.timeout(120_000);
  let red: NodeRedProcess | null = null;
  let context: BrowserContext | null = null;
  let page: Page;
  const pageErrors: string[] = [];

  before(async () => {
    const flows = JSON.parse(fs.readFileSync(path.join(root, 'examples', FILE), 'utf8'));
    red = new NodeRedProcess({ flows, modules: [DASHBOARD] });
    await red.start();
    const browser = await findChromium();
    const { chromium } = require('playwright-core') as typeof import('playwright-core');
    const profile = path.join(red.dir, 'chromium-profile');
    fs.mkdirSync(profile);
    context = await chromium
      .launchPersistentContext(profile, {
        executablePath: browser.executablePath,
        env: browser.env,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 1280, height: 860 },
        timeout: WAIT_MS,
      })
      .catch((err: Error) => {
        throw new Error(`${browser.source} did not start: ${err.message}`);
      });
    context.setDefaultTimeout(WAIT_MS);
    page = context.pages()[0] ?? (await context.newPage());
    page.on('pageerror', (err: Error) => pageErrors.push(err.message));
  });

  after(async () => {
    await context?.close();
    await red?.dispose();
  });

  it('Node-RED loads Dashboard 2 from the user directory and deploys the example without an error', async () => {
    const log = red?.log ?? '';
    should(log).match(/Started flows/);
    should(log).not.match(/\[error\]|Missing node modules|Waiting for missing types/);
    const res = await fetch(`${red?.base}/nodes`, { headers: { Accept: 'application/json' } });
    should(res.status).equal(200);
    const sets = (await res.json()) as {
      module: string;
      types: string[];
      enabled: boolean;
      local: boolean;
      err?: string;
    }[];
    const dashboard = sets.filter((s) => s.module === DASHBOARD);
    should(dashboard.length).be.above(0, `${DASHBOARD} is not loaded`);
    should(dashboard.filter((s) => s.err).map((s) => s.err)).eql([]);
    // local: found in <userDir>/node_modules, where the test linked it.
    should(dashboard.every((s) => s.enabled && s.local)).be.true(JSON.stringify(dashboard));
    should(dashboard.flatMap((s) => s.types)).containDeep(['ui-chart', 'ui-table', 'ui-text']);
  });

  it('/dashboard/site: a chart per asset draws setpoint and measured, the table lists the assets', async () => {
    const response = await page.goto(`${red?.base}/dashboard/site`, { waitUntil: 'load' });
    should(response?.status()).equal(200);
    // Three charts, each a canvas (ECharts), and the table's rows.
    await page.waitForFunction(() => document.querySelectorAll('canvas').length >= 3);
    const table = page.locator('table tbody tr');
    for (const asset of ['ast_ev_001', 'ast_ev_002', 'ast_batt_001']) {
      await table.filter({ hasText: asset }).first().waitFor({ state: 'visible' });
    }
    // The second slot of the sample day (at 10 s): ast_ev_002 at 11 kW, CHARGING.
    await table
      .filter({ hasText: 'ast_ev_002' })
      .filter({ hasText: 'CHARGING' })
      .filter({ hasText: '11' })
      .first()
      .waitFor({ state: 'visible' });
    const row = (asset: string) => table.filter({ hasText: asset }).first().textContent();
    should(await row('ast_ev_001')).match(/CHARGING/);
    should(await row('ast_batt_001')).match(/CHARGING|DISCHARGING|IDLE/);

    // Each chart draws both series: the setpoint (blue) and the measured power (orange),
    // more than a legend icon's worth of pixels each (an icon alone is about 100 pixels at
    // this size, the lines of the first readings add hundreds).
    const colours = ['#0095ff', '#ff7f0e'];
    let counts: number[][] = [];
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      counts = await page.evaluate(colouredPixels, colours);
      const drawn = counts.filter((c) => c.every((n) => n > 300));
      if (drawn.length >= 3) break;
      if (Date.now() > deadline)
        throw new Error(`the charts did not draw both lines: pixels ${JSON.stringify(counts)}`);
      await new Promise((r) => setTimeout(r, 250));
    }

    // The site's totals and the last event (the package's msg.summary).
    const body = (await page.locator('body').textContent()) ?? '';
    should(body).match(/setpoints in force, kW\s*-?\d+(\.\d+)?/);
    should(body).match(/measured, kW\s*-?\d+(\.\d+)?/);
    should(body).match(/ast_\w+ (SET_(DIS)?CHARGE_RATE [\d.]+ kW (COMPLETED|FAILED)|schedule day)/);
    should(pageErrors).eql([]);

    // For the picture: a few slots of the day, the battery discharging (the fourth, at 30 s).
    await table
      .filter({ hasText: 'ast_batt_001' })
      .filter({ hasText: 'DISCHARGING' })
      .first()
      .waitFor({ state: 'visible' });
    await page.screenshot({ path: path.join(IMAGES, 'dashboard.png') });
  });
});
