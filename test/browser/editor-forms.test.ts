/**
 * What every node's editor definition takes from resources/qe-editor.js (QeEditor.form,
 * labels, configLabels, defaults, configDefaults, number), in a real browser: Node-RED (a
 * real process, test/helpers/node-red-process.ts) and its editor in headless Chromium
 * through playwright-core (test/helpers/chromium.ts):
 *
 * - every node type's dialog opens with each field that its template had written out (the
 *   same ids), each label and placeholder from the node's catalog, then cancels;
 * - the name and coordinator rows come first, are filled from the node, and what is typed
 *   in a shared row is saved;
 * - a node saved before loads and saves the same: open, Done, the same properties (every
 *   node type but the two table nodes, whose tables test/browser/editor-tables.test.ts edits);
 * - a number field flags a bad value in the dialog and accepts blank and `${ENV}`;
 * - the labels: palette, node (name, else its key field), italic when named, the ports'.
 *
 * Needs the build (`npm test` builds first).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import should from 'should';
import { EventType } from '../../src';
import { openEditor } from '../helpers/chromium';
import { NodeRedProcess } from '../helpers/node-red-process';

const WAIT_MS = 20000;
const root = path.join(__dirname, '../..');
const CONFIG_TYPES = [
  'qe-coordinator',
  'qe-modbus-connection',
  'qe-ocpp-server',
  'qe-fleet-broker',
];
/** The ids that each type's template had written out before the rows were shared. */
const IDS: Record<string, string[]> = {
  'qe-adapter': ['name', 'coordinator', 'assets', 'protocol'],
  'qe-asset-state': ['name', 'coordinator', 'assetId', 'preset', 'definition'],
  'qe-dispatcher': ['name', 'coordinator'],
  'qe-events': ['name', 'coordinator', 'eventTypes-list', 'eventTypes-all', 'eventTypes-none'],
  'qe-fleet': ['name', 'coordinator', 'broker', 'schedule-fields', 'eventTypes-list'],
  'qe-limit': ['name', 'coordinator'],
  'qe-meter': ['name', 'coordinator', 'meter'],
  'qe-modbus': ['name', 'coordinator', 'connection', 'batteries-container'],
  'qe-ocpp': ['name', 'coordinator', 'server', 'failsafeAfterS', 'chargers-container'],
  'qe-schedule': ['name', 'coordinator', 'schedule-fields'],
  'qe-coordinator': [
    'name',
    'siteId',
    'commandTimeoutSeconds',
    'maxRetries',
    'retryBaseSeconds',
    'retryBackoffFactor',
    'retryMaxSeconds',
    'staleStateSeconds',
    'dispatchIntervalSeconds',
    'deadbandKw',
    'horizonEnd',
    'fallbackKw',
    'silenceSeconds',
    'limits',
    'persist',
  ],
  'qe-fleet-broker': [
    'name',
    'url',
    'clientId',
    'protocolVersion',
    'keepalive',
    'prefix',
    'username',
    'password',
    'useTls',
    'tls',
  ],
  'qe-modbus-connection': [
    'name',
    'transport',
    'host',
    'port',
    'serialPath',
    'baudRate',
    'parity',
    'dataBits',
    'stopBits',
    'timeoutMs',
    'queueLimit',
  ],
  'qe-ocpp-server': [
    'name',
    'mode',
    'host',
    'port',
    'path',
    'protocols',
    'security',
    'passwords',
    'cert',
    'key',
    'allowUnknown',
    'heartbeatSeconds',
    'callTimeoutSeconds',
    'maxBadMessages',
    'authorize',
  ],
};
/** The config nodes, and a node of each flow type, with every property as the editor saves it. */
const CONFIG_NODES = [
  {
    id: 'coord',
    type: 'qe-coordinator',
    name: 'Depot',
    siteId: 'depot',
    commandTimeoutSeconds: 30,
    maxRetries: 4,
    retryBackoffFactor: 2,
    retryBaseSeconds: 2,
    retryMaxSeconds: 60,
    staleStateSeconds: 60,
    dispatchIntervalSeconds: 5,
    deadbandKw: 0.001,
    horizonEnd: 'hold',
    fallbackKw: '{}',
    silenceSeconds: '',
    persist: true,
    limits: '',
  },
  {
    id: 'bus',
    type: 'qe-modbus-connection',
    name: '',
    transport: 'tcp',
    host: '127.0.0.1',
    port: 5020,
    timeoutMs: 1000,
    serialPath: '',
    baudRate: 9600,
    parity: 'none',
    dataBits: 8,
    stopBits: 1,
    queueLimit: 200,
  },
  {
    id: 'csms',
    type: 'qe-ocpp-server',
    name: 'CSMS',
    mode: 'port',
    host: '0.0.0.0',
    port: 9220,
    path: '/ocpp',
    protocols: 'both',
    security: 'none',
    allowUnknown: false,
    heartbeatSeconds: 120,
    callTimeoutSeconds: 20,
    maxBadMessages: 5,
    authorize: 'accept',
  },
  {
    id: 'broker',
    type: 'qe-fleet-broker',
    name: '',
    url: 'mqtt://127.0.0.1:1883',
    clientId: '',
    protocolVersion: '4',
    keepalive: 30,
    prefix: 'qe/v1',
    tls: '',
  },
];
const SCHEDULE = {
  assetMap: '{}',
  ratedKw: '{}',
  timeZone: 'CET',
  ignoreUnmapped: false,
  limitColumn: '',
};
const base = { name: '', coordinator: 'coord' };
const FLOW_NODES: Record<string, unknown>[] = [
  { id: 'n-adapter', type: 'qe-adapter', ...base, assets: 'ev_1, ev_2', protocol: 'custom' },
  {
    id: 'n-state',
    type: 'qe-asset-state',
    ...base,
    name: 'Hall',
    assetId: 'b1',
    preset: 'battery',
    definition: '',
  },
  { id: 'n-dispatcher', type: 'qe-dispatcher', ...base, name: 'Dispatch' },
  {
    id: 'n-events',
    type: 'qe-events',
    ...base,
    eventTypes: Object.values(EventType),
    assetFilter: 'ev_1',
    outputs: 14,
    wires: Object.values(EventType).map(() => []),
  },
  { id: 'n-fleet', type: 'qe-fleet', ...base, broker: 'broker', ...SCHEDULE, eventTypes: [] },
  { id: 'n-limit', type: 'qe-limit', ...base },
  { id: 'n-meter', type: 'qe-meter', ...base, meter: 'building' },
  { id: 'n-schedule', type: 'qe-schedule', ...base, name: 'Plan', ...SCHEDULE },
  { id: 'n-modbus', type: 'qe-modbus', ...base, connection: 'bus', wires: [[], []] },
  { id: 'n-ocpp', type: 'qe-ocpp', ...base, server: 'csms', wires: [[], []] },
];
const TYPES = [...FLOW_NODES.map((n) => String(n.type)), ...CONFIG_TYPES];
const idOf = (type: string) =>
  String([...FLOW_NODES, ...CONFIG_NODES].find((n) => n.type === type)?.id);
type Catalog = Record<string, Record<string, string> | string>;
const catalog = (type: string): Catalog =>
  JSON.parse(
    fs.readFileSync(path.join(root, 'nodes', type, 'locales/en-US', `${type}.json`), 'utf8'),
  )[type];
const text = (type: string, key: string): string =>
  key
    .split('.')
    .reduce<unknown>((o, k) => (o as Record<string, unknown>)?.[k], catalog(type)) as string;

interface EditorNode {
  id: string;
  type: string;
  _def: Record<string, unknown> & { defaults: Record<string, unknown> };
  [key: string]: unknown;
}
interface Red {
  nodes: { node(id: string): EditorNode | undefined; getType(t: string): EditorNode['_def'] };
  view: { importNodes(nodes: unknown[], options?: Record<string, unknown>): void };
  editor: { edit(node: EditorNode): void; editConfig(n: string, type: string, id: string): void };
  workspaces: { active(): string };
}
describe('editor: the rows, labels and checks that every node shares (Node-RED + Chromium)', function () {
  this.timeout(90000);
  let nodeRed: NodeRedProcess | null = null;
  let context: BrowserContext | null = null;
  let page: Page;
  let errors: string[] = [];

  before(async function () {
    this.timeout(120000);
    nodeRed = new NodeRedProcess({ flows: [] });
    await nodeRed.start();
    const opened = await openEditor(nodeRed.base, { name: 'forms', waitMs: WAIT_MS });
    context = opened.context;
    page = opened.page;
    errors = opened.errors;
    await page.waitForFunction(
      () => Boolean((globalThis as unknown as { RED?: Red }).RED?.workspaces?.active?.()),
      undefined,
      { timeout: 60000 },
    );
    await page.locator('#red-ui-loading-progress').waitFor({ state: 'hidden' });
    await page.addStyleTag({ content: '#red-ui-notifications { visibility: hidden !important; }' });
    await page.evaluate(
      ({ config, flow }) => {
        const RED = (globalThis as unknown as { RED: Red }).RED;
        const z = RED.workspaces.active();
        const placed = flow.map((n, i) => ({ x: 200, y: 60 + 50 * i, z, wires: [[]], ...n }));
        RED.view.importNodes([...config, ...placed], { generateIds: false, addFlow: false });
      },
      { config: CONFIG_NODES, flow: FLOW_NODES },
    );
  });

  after(async function () {
    this.timeout(30000);
    await context?.close().catch(() => undefined);
    await nodeRed?.dispose();
  });

  afterEach(async () => {
    // A dialog that a failed test left open: cancel it, so that the next test starts clean.
    for (const cancel of ['#node-config-dialog-cancel', '#node-dialog-cancel']) {
      if (await page.locator(cancel).isVisible()) await page.locator(cancel).click();
    }
    should(errors).eql([], `browser errors:\n  ${errors.join('\n  ')}`);
  });

  const prefix = (type: string) =>
    CONFIG_TYPES.includes(type) ? 'node-config-input' : 'node-input';
  const button = (type: string, which: 'ok' | 'cancel') =>
    page.locator(`#node-${CONFIG_TYPES.includes(type) ? 'config-' : ''}dialog-${which}`);
  async function open(type: string): Promise<void> {
    await page.evaluate(
      ({ id, config }) => {
        const RED = (globalThis as unknown as { RED: Red }).RED;
        if (config) RED.editor.editConfig('', RED.nodes.node(id)?.type ?? '', id);
        else RED.editor.edit(RED.nodes.node(id) as EditorNode);
      },
      { id: idOf(type), config: CONFIG_TYPES.includes(type) },
    );
    await button(type, 'ok').waitFor({ state: 'visible' });
    // The tray's buttons show before its form is built: wait for the first row.
    await page.locator(`#${prefix(type)}-name`).waitFor({ state: 'visible' });
  }
  async function close(type: string, which: 'ok' | 'cancel'): Promise<void> {
    await button(type, which).click();
    await button(type, which).waitFor({ state: 'detached' });
  }
  /** The node's properties (those of its `defaults`), as the editor keeps them. */
  const propsOf = (id: string) =>
    page.evaluate((id) => {
      const n = (globalThis as unknown as { RED: Red }).RED.nodes.node(id) as EditorNode;
      return JSON.parse(JSON.stringify(Object.keys(n._def.defaults).map((k) => [k, n[k]])));
    }, id) as Promise<[string, unknown][]>;
  const field = (type: string, prop: string) => page.locator(`#${prefix(type)}-${prop}`);
  const hasError = async (type: string, prop: string) =>
    /\binput-error\b/.test((await field(type, prop).getAttribute('class')) ?? '');

  for (const type of TYPES) {
    it(`${type}: the dialog has its fields, labelled from the catalog`, async () => {
      await open(type);
      const form = page.locator(
        CONFIG_TYPES.includes(type) ? '#node-config-dialog-edit-form' : '#dialog-form',
      );
      for (const id of IDS[type] ?? []) {
        const full = /^(eventTypes|schedule-fields|batteries|chargers)/.test(id)
          ? `node-input-${id}`
          : `${prefix(type)}-${id}`;
        should(await form.locator(`[id="${full}"]`).count()).equal(1, `${type}: #${full}`);
      }
      // Every row built from a marker: its label, placeholder and unit from the catalog.
      const rows = await form
        .locator('.form-row label[for] span[data-i18n]')
        .evaluateAll((els) => els.map((e) => [e.getAttribute('data-i18n'), e.textContent?.trim()]));
      should(rows.length).be.above(0);
      for (const [key, shown] of rows) {
        const [, name] = String(key).split(':');
        should(shown).equal(text(type, String(name).replace(`${type}.`, '')), String(key));
      }
      const firstRows = await form
        .locator('.form-row label[for]')
        .evaluateAll((els) => els.slice(0, 2).map((e) => e.getAttribute('for')));
      should(firstRows[0]).equal(`${prefix(type)}-name`);
      if (!CONFIG_TYPES.includes(type)) should(firstRows[1]).equal('node-input-coordinator');
      should(await field(type, 'name').getAttribute('placeholder')).equal(text(type, 'label.name'));
      await close(type, 'cancel');
    });
  }

  it('qe-meter: the shared rows are filled from the node, and what is typed is saved', async () => {
    await open('qe-meter');
    should(await field('qe-meter', 'name').inputValue()).equal('');
    should(await field('qe-meter', 'meter').inputValue()).equal('building');
    should(await field('qe-meter', 'meter').getAttribute('placeholder')).equal(
      text('qe-meter', 'placeholder.meter'),
    );
    // The coordinator row: Node-RED's config-node picker, on the coordinator imported.
    should(await page.locator('select#node-input-coordinator').inputValue()).equal('coord');
    await field('qe-meter', 'name').fill('Main meter');
    await field('qe-meter', 'meter').fill('grid');
    await close('qe-meter', 'ok');
    should(Object.fromEntries(await propsOf('n-meter'))).match({
      name: 'Main meter',
      meter: 'grid',
      coordinator: 'coord',
    });
  });

  for (const type of TYPES.filter((t) => !['qe-modbus', 'qe-ocpp'].includes(t))) {
    it(`${type}: a node saved before saves the same (open, Done)`, async () => {
      const before = await propsOf(idOf(type));
      await open(type);
      await close(type, 'ok');
      should(await propsOf(idOf(type))).eql(before);
    });
  }

  it('qe-coordinator: a number field flags a bad value and takes blank and an env var', async () => {
    await open('qe-coordinator');
    should(await field('qe-coordinator', 'maxRetries').inputValue()).equal('4');
    const check = async (prop: string, value: string) => {
      await field('qe-coordinator', prop).fill(value);
      await field('qe-coordinator', prop).press('End');
      return hasError('qe-coordinator', prop);
    };
    should(await check('commandTimeoutSeconds', 'abc')).be.true();
    should(await check('commandTimeoutSeconds', '0')).be.true();
    should(await check('commandTimeoutSeconds', `${'${'}QE_TIMEOUT}`)).be.false();
    should(await check('commandTimeoutSeconds', '')).be.false();
    should(await check('maxRetries', '1.5')).be.true();
    should(await check('retryBackoffFactor', '0.5')).be.true();
    should(await check('deadbandKw', '0')).be.false();
    should(await check('maxRetries', '5')).be.false();
    should(await check('retryBackoffFactor', '1.5')).be.false();
    await field('qe-coordinator', 'commandTimeoutSeconds').fill('45');
    await close('qe-coordinator', 'ok');
    should(Object.fromEntries(await propsOf('coord'))).match({
      commandTimeoutSeconds: '45',
      maxRetries: '5',
      retryBackoffFactor: '1.5',
    });
    // The same rules on a field of another node, through its definition.
    const verdicts = await page.evaluate(() => {
      const def = (globalThis as unknown as { RED: Red }).RED.nodes.getType('qe-ocpp-server');
      const hb = (def.defaults.heartbeatSeconds as { validate(v: unknown, o?: unknown): boolean })
        .validate;
      return ['30', '1.5', '-1', '', `${'${'}HB}`, 'x'].map((v) => hb(v));
    });
    should(verdicts).eql([true, false, false, true, true, false]);
  });

  it('the labels: palette, node (name, else its key field, italic when named), ports', async () => {
    const got = await page.evaluate((types) => {
      const RED = (globalThis as unknown as { RED: Red }).RED;
      return types.map((t) => {
        const def = RED.nodes.getType(t) as Record<string, (...a: unknown[]) => unknown>;
        const shown = document.querySelector(
          `.red-ui-palette-node[data-palette-type="${t}"] .red-ui-palette-label`,
        );
        const n = { name: '', meter: 'building', assets: 'ev_1', _def: def, _: def._ };
        const named = { ...n, name: 'Mine' };
        return {
          palette: def.paletteLabel?.call(def),
          // The palette breaks a long label over lines (at spaces and hyphens): no spaces.
          shown: shown?.textContent?.replace(/\s+/g, '') ?? null,
          unnamed: def.label?.call(n),
          named: def.label?.call(named),
          style: [def.labelStyle?.call(n), def.labelStyle?.call(named)],
          ports: [
            def.inputLabels?.call(n, 0),
            def.outputLabels?.call(n, 0),
            def.outputLabels?.call(n, 1),
          ],
        };
      });
    }, TYPES);
    TYPES.forEach((t, i) => {
      const g = got[i] as (typeof got)[number];
      const palette = text(t, 'paletteLabel');
      should(g.palette).equal(palette, t);
      if (!CONFIG_TYPES.includes(t)) {
        should(g.shown).equal(palette.replace(/\s+/g, ''), `${t} in the palette`);
        should(g.named).equal('Mine', t);
        should(g.style).eql(['', 'node_label_italic'], t);
      }
    });
    const of = (t: string) => got[TYPES.indexOf(t)] as (typeof got)[number];
    should(of('qe-meter').unnamed).equal('building');
    should(of('qe-adapter').unnamed).equal('ev_1');
    should(of('qe-limit').unnamed).equal(text('qe-limit', 'paletteLabel'));
    should(of('qe-meter').ports.slice(0, 2)).eql([
      text('qe-meter', 'label.input'),
      text('qe-meter', 'label.output'),
    ]);
    should(of('qe-fleet').ports.slice(1)).eql([
      text('qe-fleet', 'label.output1'),
      text('qe-fleet', 'label.output2'),
    ]);
    should(of('qe-modbus').ports).eql([
      text('qe-modbus', 'label.input'),
      text('qe-modbus', 'label.output1'),
      text('qe-modbus', 'label.output2'),
    ]);
    should(of('qe-coordinator').unnamed).equal(text('qe-coordinator', 'paletteLabel'));
    should(of('qe-coordinator').style).eql([undefined, undefined]);
  });
});
