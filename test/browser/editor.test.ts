/**
 * The editor in a real browser: Node-RED (the devDependency, in a child process) with this
 * package installed in a temporary user directory, driven in headless Chromium through
 * playwright-core (which Chromium: test/helpers/chromium.ts):
 *
 * - Node-RED loads the package from <userDir>/node_modules (a symlink to the repository;
 *   FlowFuse Dashboard 2, which example 09 needs, is linked there too);
 * - every node type appears in the palette under `energy`; config nodes are registered;
 * - each node's edit dialog opens and closes with no error in the browser console;
 * - each example flow imports (RED.view.importNodes) and deploys (the Deploy button);
 * - the dispatch example's nodes show a status after deploy;
 * - screenshots (palette.png, edit-dialog.png, dispatch-flow.png) go to a temporary directory,
 *   or to docs/images/ (the README's pictures) when QE_SCREENSHOTS=docs.
 *
 * Needs the build (nodes/<type>/<type>.js, dist/; `npm test` builds first). Chromium is
 * QE_CHROMIUM_PATH, else Debian's /usr/bin/chromium, else the one the devDependency
 * @sparticuz/chromium ships (unpacked into the temporary directory on first use).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, ConsoleMessage, Page } from 'playwright-core';
import should from 'should';
import { CHROMIUM_FLAGS, findChromium } from '../helpers/chromium';
import { NodeRedProcess } from '../helpers/node-red-process';

const root = path.join(__dirname, '../..');
const pkg = require(path.join(root, 'package.json')) as {
  name: string;
  'node-red': { nodes: Record<string, string> };
};
const NODE_TYPES = Object.keys(pkg['node-red'].nodes);
const EXAMPLES = path.join(root, 'examples');
const EXAMPLE_FILES = fs
  .readdirSync(EXAMPLES)
  .filter((f) => f.endsWith('.json'))
  .sort();
const DISPATCH_EXAMPLE = EXAMPLE_FILES.find((f) => /dispatch/i.test(f)) ?? '';
const IMAGES =
  process.env.QE_SCREENSHOTS === 'docs'
    ? path.join(root, 'docs/images')
    : fs.mkdtempSync(path.join(os.tmpdir(), 'qe-screens-'));
/** Palette modules that some examples need beyond Node-RED (devDependencies). */
const PALETTE_MODULES = ['@flowfuse/node-red-dashboard'];
/** The longest that any one wait of this file lasts. */
const WAIT_MS = 20000;

/** Config node types: `category: 'config'` in their editor definition. */
const CONFIG_TYPES = NODE_TYPES.filter((type) => {
  const js = pkg['node-red'].nodes[type] ?? '';
  const html = fs.readFileSync(path.join(root, js.replace(/\.js$/, '.html')), 'utf8');
  return /\bcategory\s*:\s*(["'])config\1/.test(html);
});
const PALETTE_TYPES = NODE_TYPES.filter((t) => !CONFIG_TYPES.includes(t));

/** The parts of the editor's `RED` API that the page functions below use. */
interface EditorNode {
  id: string;
  type: string;
  z?: string;
  name?: string;
  valid?: boolean;
  validationErrors?: string[];
}
interface EditorRed {
  nodes: {
    getType(type: string): { category?: string } | undefined;
    node(id: string): EditorNode | undefined;
    eachNode(cb: (n: EditorNode) => void): void;
    eachConfig(cb: (n: EditorNode) => void): void;
    dirty(): boolean;
  };
  view: {
    importNodes(nodes: unknown[], options?: Record<string, unknown>): void;
    select(selection: unknown): void;
  };
  editor: {
    edit(node: EditorNode): void;
    editConfig(name: string, type: string, id: string): void;
  };
  workspaces: { active(): string; show(id: string): void };
  actions: { invoke(name: string): void };
  sidebar: { show(tab: string): void };
}
type EditorGlobal = { RED: EditorRed };

interface FlowNode {
  id: string;
  type: string;
  z?: string;
  name?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns true, at most `ms`; then throws with `what` and `detail()`. */
async function until(
  what: string,
  probe: () => Promise<boolean> | boolean,
  detail: () => string = () => '',
  ms = WAIT_MS,
): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${ms} ms waiting for ${what}${detail()}`);
    await sleep(200);
  }
}

describe('editor in a real browser (Node-RED + headless Chromium)', function () {
  this.timeout(60000);

  let tmp = '';
  /** Node-RED, a real process with the package installed in its user directory. */
  let red: NodeRedProcess | null = null;
  /** Everything Node-RED has printed so far. */
  const nodeRedLog = () => red?.log ?? '';
  /** Which Chromium ran, for QE_BROWSER_LOG. */
  let browserInfo = '';
  let base = '';
  let context: BrowserContext | null = null;
  let page: Page;
  /** Console errors and uncaught exceptions of the page, in order. */
  const consoleErrors: string[] = [];
  const logTail = () =>
    `\n--- Node-RED log (last lines) ---\n${nodeRedLog().split('\n').slice(-30).join('\n')}`;

  /** Runs `step`, then fails if the page logged an error meanwhile. */
  async function noConsoleErrors(what: string, step: () => Promise<void>): Promise<void> {
    const mark = consoleErrors.length;
    await step();
    await sleep(300); // errors of the last event handlers
    const errors = consoleErrors.slice(mark);
    should(errors).eql([], `browser console errors while ${what}:\n  ${errors.join('\n  ')}`);
  }

  /**
   * Opens the edit dialog of the node `id` (a flow node; or, with `config`, adds a new config
   * node of that type), optionally takes a screenshot, cancels it and waits until it is gone.
   */
  async function openAndCancel(
    what: string,
    open: { id: string } | { configType: string },
    screenshot?: string,
  ): Promise<void> {
    await noConsoleErrors(`opening and cancelling the edit dialog of ${what}`, async () => {
      await page.evaluate((open) => {
        const RED = (globalThis as unknown as EditorGlobal).RED;
        if ('configType' in open) {
          RED.editor.editConfig('', open.configType, '_ADD_');
          return;
        }
        const node = RED.nodes.node(open.id);
        if (!node) throw new Error(`node ${open.id} not in the workspace`);
        if (node.z && node.z !== RED.workspaces.active()) RED.workspaces.show(node.z);
        RED.editor.edit(node);
      }, open);
      const cancel = page.locator(
        'configType' in open ? '#node-config-dialog-cancel' : '#node-dialog-cancel',
      );
      await cancel.waitFor({ state: 'visible' });
      await page.locator('.red-ui-tray-body .form-row').first().waitFor({ state: 'visible' });
      if (screenshot) {
        await sleep(500); // the tray's slide-in
        await page.screenshot({ path: path.join(IMAGES, screenshot) });
      }
      await cancel.click();
      await page.locator('.red-ui-tray').waitFor({ state: 'detached' });
    });
  }

  before(async function () {
    this.timeout(120000);

    // What this test needs, each with how to get it.
    const browser = await findChromium();
    let chromium: typeof import('playwright-core').chromium;
    try {
      ({ chromium } = require('playwright-core') as typeof import('playwright-core'));
    } catch (err) {
      throw new Error(
        `playwright-core cannot be loaded (${(err as Error).message}): it is a devDependency; ` +
          'run `npm install`.',
      );
    }
    for (const type of NODE_TYPES) {
      const js = path.join(root, pkg['node-red'].nodes[type] ?? '');
      if (!fs.existsSync(js)) {
        throw new Error(`${path.relative(root, js)} is missing: run \`npm run build\` first`);
      }
    }

    // A user directory with the package installed as a user would (npm install <pkg>): listed
    // in its package.json, and in node_modules, here a symlink to the repository; the palette
    // modules that examples need (09: FlowFuse Dashboard 2) likewise, so that every example
    // imports and deploys (test/helpers/node-red-process.ts).
    const nodeRed = new NodeRedProcess({ flows: [], modules: PALETTE_MODULES });
    red = nodeRed;
    await nodeRed.start(60000).catch((err: Error) => {
      throw new Error(`${err.message}${logTail()}`);
    });
    base = nodeRed.base;
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-editor-'));

    const profile = path.join(tmp, 'chromium-profile');
    fs.mkdirSync(profile);
    context = await chromium
      .launchPersistentContext(profile, {
        executablePath: browser.executablePath,
        env: browser.env,
        headless: true,
        args: CHROMIUM_FLAGS,
        viewport: { width: 1920, height: 1080 },
        timeout: WAIT_MS,
      })
      .catch((err: Error) => {
        throw new Error(`${browser.source} did not start: ${err.message}`);
      });
    context.setDefaultTimeout(WAIT_MS);
    browserInfo = `Chromium ${context.browser()?.version() ?? '(version unknown)'}, ${browser.source}`;
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (m: ConsoleMessage) => {
      if (m.type() === 'error') consoleErrors.push(`console.error: ${m.text()}`);
    });
    page.on('pageerror', (err: Error) => {
      consoleErrors.push(`uncaught: ${err.message}`);
    });
    await page.goto(base, { waitUntil: 'load', timeout: WAIT_MS });
    // Ready: the palette is built and a workspace is shown.
    await page.waitForFunction(
      (type: string) => {
        const RED = (globalThis as unknown as Partial<EditorGlobal>).RED;
        return Boolean(RED?.nodes?.getType?.(type) && RED.workspaces?.active?.());
      },
      PALETTE_TYPES[0] ?? '',
      { timeout: WAIT_MS },
    );
    await page
      .locator(`.red-ui-palette-node[data-palette-type="${PALETTE_TYPES[0]}"]`)
      .waitFor({ state: 'visible' });
    await page.locator('#red-ui-loading-progress').waitFor({ state: 'hidden' });
    // Toasts ("Imported", "Successfully deployed") would cover the screenshots.
    await page.addStyleTag({ content: '#red-ui-notifications { visibility: hidden !important; }' });
    fs.mkdirSync(IMAGES, { recursive: true });
  });

  after(async function () {
    this.timeout(30000);
    if (process.env.QE_BROWSER_LOG) console.log(`${browserInfo}\n${nodeRedLog()}`);
    await context?.close().catch(() => undefined);
    await red?.dispose();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('Node-RED loads the package from the user directory (through the symlink)', async () => {
    const res = await fetch(`${base}/nodes`, { headers: { Accept: 'application/json' } });
    should(res.status).equal(200);
    const sets = (await res.json()) as {
      module: string;
      types: string[];
      enabled: boolean;
      local: boolean;
      err?: string;
    }[];
    const ours = sets.filter((s) => s.module === pkg.name);
    should(ours.filter((s) => s.err).map((s) => s.err)).eql([]);
    // local: found in <userDir>/node_modules, i.e. through the symlink (the repository is in
    // no other node_modules that Node-RED scans).
    should(ours.every((s) => s.enabled && s.local)).be.true(JSON.stringify(ours));
    should(ours.flatMap((s) => s.types).sort()).eql([...NODE_TYPES].sort());
  });

  it('shows every node type in the palette under "energy"; config nodes are registered', async () => {
    const category = page.locator('#red-ui-palette-container-energy');
    await category.waitFor({ state: 'visible' });
    for (const type of PALETTE_TYPES) {
      await category
        .locator(`.red-ui-palette-node[data-palette-type="${type}"]`)
        .waitFor({ state: 'visible' });
    }
    const inEnergy = await category
      .locator('.red-ui-palette-node')
      .evaluateAll((els) =>
        els.map((e) => (e as unknown as { dataset: { paletteType: string } }).dataset.paletteType),
      );
    should([...inEnergy].sort()).eql([...PALETTE_TYPES].sort());
    const categories = await page.evaluate((types: string[]) => {
      const RED = (globalThis as unknown as EditorGlobal).RED;
      return types.map((t) => RED.nodes.getType(t)?.category ?? null);
    }, CONFIG_TYPES);
    should(categories).eql(CONFIG_TYPES.map(() => 'config'));
    // Config nodes have no palette entry.
    for (const type of CONFIG_TYPES) {
      should(await page.locator(`.red-ui-palette-node[data-palette-type="${type}"]`).count()).equal(
        0,
      );
    }
    should(consoleErrors).eql(
      [],
      `browser console errors while loading the editor:\n  ${consoleErrors.join('\n  ')}`,
    );
    await category.scrollIntoViewIfNeeded();
    await category.screenshot({ path: path.join(IMAGES, 'palette.png') });
  });

  describe('edit dialogs of new nodes open and close with no console error', () => {
    PALETTE_TYPES.forEach((type, i) => {
      it(type, async () => {
        const id = `qe-browser-${type}`;
        await noConsoleErrors(`adding ${type} to the workspace`, async () => {
          await page.evaluate(
            ({ id, type, y }) => {
              const RED = (globalThis as unknown as EditorGlobal).RED;
              RED.view.importNodes(
                [{ id, type, x: 200, y, z: RED.workspaces.active(), wires: [] }],
                { generateIds: false, addFlow: false },
              );
            },
            { id, type, y: 60 + 60 * i },
          );
        });
        await openAndCancel(type, { id });
      });
    });
    for (const type of CONFIG_TYPES) {
      it(`${type} (config node, added from scratch)`, async () => {
        await openAndCancel(type, { configType: type });
      });
    }
  });

  describe('example flows import and deploy', () => {
    before(async () => {
      // A clean workspace: remove the nodes added for the dialogs and deploy nothing yet.
      await page.evaluate(() => {
        const RED = (globalThis as unknown as EditorGlobal).RED;
        const ids: EditorNode[] = [];
        RED.nodes.eachNode((n) => {
          if (n.id.startsWith('qe-browser-')) ids.push(n);
        });
        RED.view.select({ nodes: ids });
        RED.actions.invoke('core:delete-selection');
      });
    });

    /** The examples that imported and deployed. */
    const deployed = new Set<string>();

    for (const file of EXAMPLE_FILES) {
      it(file, async () => {
        const flow = JSON.parse(fs.readFileSync(path.join(EXAMPLES, file), 'utf8')) as FlowNode[];
        await noConsoleErrors(`importing ${file}`, async () => {
          await page.evaluate((flow: unknown[]) => {
            (globalThis as unknown as EditorGlobal).RED.view.importNodes(flow, {
              generateIds: false,
              addFlow: false,
            });
          }, flow);
        });
        // Every node arrived, of a known type, valid (no red triangle).
        const problems = await page.evaluate(
          (ids: string[]) => {
            const RED = (globalThis as unknown as EditorGlobal).RED;
            const out: string[] = [];
            for (const id of ids) {
              const n = RED.nodes.node(id);
              if (!n) {
                out.push(`${id}: not imported`);
                continue;
              }
              if (n.type === 'unknown') out.push(`${id}: unknown type`);
              if (n.valid === false) {
                out.push(
                  `${n.type} ${n.name ?? n.id}: invalid ${JSON.stringify(n.validationErrors ?? [])}`,
                );
              }
            }
            return out;
          },
          flow.filter((n) => n.type !== 'tab').map((n) => n.id),
        );
        should(problems).eql([], `after importing ${file}:\n  ${problems.join('\n  ')}`);

        const logMark = nodeRedLog().length;
        await noConsoleErrors(`deploying ${file}`, async () => {
          const deployResponse = page.waitForResponse(
            (r) => r.url() === `${base}/flows` && r.request().method() === 'POST',
            { timeout: WAIT_MS },
          );
          await page.locator('#red-ui-header-button-deploy').click();
          const res = await deployResponse.catch(async (err: Error) => {
            const notes = await page.locator('.red-ui-notification').allTextContents();
            throw new Error(
              `no deploy request (${err.message}); notifications: ${notes.join(' | ')}`,
            );
          });
          should(res.status()).equal(
            200,
            `POST /flows answered ${res.status()}: ${await res.text()}`,
          );
          await until(
            'the editor to see the deploy through',
            async () =>
              !(await page.evaluate(() =>
                (globalThis as unknown as EditorGlobal).RED.nodes.dirty(),
              )),
          );
        });
        // The runtime started the flows without an error (a node whose constructor throws,
        // a type that is missing, ... are logged while the flows start).
        await until(
          'Node-RED to start the flows',
          () => /Started flows/.test(nodeRedLog().slice(logMark)),
          logTail,
        );
        const log = nodeRedLog();
        const starting = log.slice(logMark, log.indexOf('Started flows', logMark));
        const errors = starting
          .split('\n')
          .filter((l) => /\[error\]|\[warn\] (Missing|Waiting)/.test(l));
        should(errors).eql(
          [],
          `Node-RED logged errors while starting ${file}:\n  ${errors.join('\n  ')}`,
        );

        deployed.add(file);

        // The dialogs of its nodes, with the example's values, open and close cleanly.
        for (const n of flow.filter((n) => n.type.startsWith('qe-') && n.z)) {
          await openAndCancel(
            `${n.type} "${n.name ?? n.id}" of ${file}`,
            { id: n.id },
            n.type === 'qe-ocpp' ? 'edit-dialog.png' : undefined,
          );
        }
      });
    }

    it("the dispatch example's nodes show their status", async () => {
      should(DISPATCH_EXAMPLE).not.equal('', 'no example with "dispatch" in its file name');
      if (!deployed.has(DISPATCH_EXAMPLE)) {
        throw new Error(`${DISPATCH_EXAMPLE} did not deploy: see its test above`);
      }
      const flow = JSON.parse(
        fs.readFileSync(path.join(EXAMPLES, DISPATCH_EXAMPLE), 'utf8'),
      ) as FlowNode[];
      const tab = flow.find((n) => n.type === 'tab');
      const ours = flow.filter((n) => n.type.startsWith('qe-') && n.z);
      should(ours.length).be.above(0);
      await page.evaluate((id: string) => {
        (globalThis as unknown as EditorGlobal).RED.workspaces.show(id);
      }, tab?.id ?? '');
      const statusOf = (id: string) =>
        page.locator(`g[id="${id}"] .red-ui-flow-node-status-label`).textContent();
      await until(
        'a status on every node of the package in the dispatch example',
        async () => {
          for (const n of ours) if (!((await statusOf(n.id)) ?? '').trim()) return false;
          return true;
        },
        () => '',
      ).catch(async (err: Error) => {
        const got = await Promise.all(
          ours.map(async (n) => `${n.type}: "${(await statusOf(n.id).catch(() => null)) ?? ''}"`),
        );
        throw new Error(`${err.message}; statuses: ${got.join(', ')}`);
      });
      // The picture: the flow with its statuses, a step smaller to fit, and the debug sidebar
      // after the sample schedule ran a little.
      await page.evaluate(() => {
        const RED = (globalThis as unknown as EditorGlobal).RED;
        RED.view.select({ nodes: [] });
        RED.actions.invoke('core:zoom-out');
        RED.sidebar.show('debug');
      });
      await sleep(4000);
      await page.screenshot({ path: path.join(IMAGES, 'dispatch-flow.png') });
    });
  });
});
