/**
 * The shared editor code (resources/qe-editor.js) in a real browser: Node-RED (a real process,
 * test/helpers/node-red-process.ts) and its editor in headless Chromium through playwright-core
 * (which Chromium: test/helpers/chromium.ts). Each test edits a node's dialog as a user does
 * (typing, choosing, clicking Done) and reads back what the node keeps:
 *
 * - qe-modbus's battery table: rows edited and added, a duplicate asset flagged, the config
 *   saved right;
 * - a custom map: "custom" fills the box with the generic map that the runtime serves
 *   (GET qe-modbus/maps); a bad map shows the core validator's error and its field's path
 *   (POST qe-modbus/maps/validate), and the node is invalid; a bad map imported without the
 *   dialog is found invalid once the runtime has answered;
 * - qe-ocpp's charger table, through the same code;
 * - the schedule fields that qe-schedule and qe-fleet share: filled, checked and saved;
 * - the event types that qe-events and qe-fleet pick from: the core's, in its order.
 *
 * Needs the build (`npm test` builds first).
 */
import type { BrowserContext, Page } from 'playwright-core';
import should from 'should';
import { EventType, GENERIC_MAP } from '../../src';
import { openEditor } from '../helpers/chromium';
import { NodeRedProcess } from '../helpers/node-red-process';

const WAIT_MS = 20000;

interface EditorNode {
  id: string;
  valid?: boolean;
  validationErrors?: string[];
  [key: string]: unknown;
}
interface PageGlobal {
  RED: {
    nodes: { node(id: string): EditorNode | undefined; getType(t: string): unknown };
    view: { importNodes(nodes: unknown[], options?: Record<string, unknown>): void };
    editor: { edit(node: EditorNode): void };
    workspaces: { active(): string };
  };
}

describe('editor: the shared tables and fields (Node-RED + headless Chromium)', function () {
  this.timeout(90000);
  let red: NodeRedProcess | null = null;
  let context: BrowserContext | null = null;
  let page: Page;
  let errors: string[] = [];

  before(async function () {
    this.timeout(120000);
    red = new NodeRedProcess({ flows: [] });
    await red.start();
    const opened = await openEditor(red.base, { name: 'tables', waitMs: WAIT_MS });
    context = opened.context;
    page = opened.page;
    errors = opened.errors;
    await page.waitForFunction(
      () =>
        Boolean(
          (globalThis as unknown as Partial<PageGlobal>).RED?.nodes?.getType?.('qe-modbus') &&
            (globalThis as unknown as Partial<PageGlobal>).RED?.workspaces?.active?.(),
        ),
      undefined,
      { timeout: 60000 },
    );
    await page.locator('#red-ui-loading-progress').waitFor({ state: 'hidden' });
    await page.addStyleTag({ content: '#red-ui-notifications { visibility: hidden !important; }' });
    // The config nodes that the nodes below point at.
    await importNodes([
      { id: 'coord', type: 'qe-coordinator', siteId: 'depot' },
      { id: 'bus', type: 'qe-modbus-connection', host: '127.0.0.1', port: 5020 },
      { id: 'csms', type: 'qe-ocpp-server', port: 9220 },
      {
        id: 'broker',
        type: 'qe-fleet-broker',
        url: 'mqtt://127.0.0.1:1883',
        clientId: '',
        protocolVersion: '4',
        keepalive: 60,
        prefix: 'qe/v1',
      },
    ]);
  });

  after(async function () {
    this.timeout(30000);
    await context?.close().catch(() => undefined);
    await red?.dispose();
  });

  afterEach(() => {
    should(errors).eql([], `browser errors:\n  ${errors.join('\n  ')}`);
  });

  async function importNodes(nodes: Record<string, unknown>[]): Promise<void> {
    await page.evaluate((nodes) => {
      const RED = (globalThis as unknown as PageGlobal).RED;
      const z = RED.workspaces.active();
      const placed = nodes.map((n, i) =>
        /^qe-(coordinator|modbus-connection|ocpp-server|fleet-broker)$/.test(String(n.type))
          ? n
          : { x: 200, y: 80 + 60 * i, z, wires: [], ...n },
      );
      RED.view.importNodes(placed, { generateIds: false, addFlow: false });
    }, nodes);
  }
  const nodeOf = (id: string) =>
    page.evaluate(
      (id) => JSON.parse(JSON.stringify((globalThis as unknown as PageGlobal).RED.nodes.node(id))),
      id,
    ) as Promise<EditorNode>;
  async function edit(id: string): Promise<void> {
    await page.evaluate((id) => {
      const RED = (globalThis as unknown as PageGlobal).RED;
      const n = RED.nodes.node(id);
      if (!n) throw new Error(`no node ${id}`);
      RED.editor.edit(n);
    }, id);
    await page.locator('#node-dialog-ok').waitFor({ state: 'visible' });
  }
  async function done(): Promise<void> {
    await page.locator('#node-dialog-ok').click();
    await page.locator('.red-ui-tray').waitFor({ state: 'detached' });
  }
  /** Types `text` into `locator` as a user does (the input's keyup runs the checks). */
  async function type(locator: ReturnType<Page['locator']>, text: string): Promise<void> {
    await locator.fill(text);
    await locator.press('End');
  }
  const hasError = async (locator: ReturnType<Page['locator']>) =>
    /\binput-error\b/.test((await locator.getAttribute('class')) ?? '');

  /** The label that the canvas shows for node `id`. */
  const labelOf = (id: string) =>
    page.evaluate((id) => {
      const RED = (globalThis as unknown as PageGlobal).RED;
      const n = RED.nodes.node(id) as EditorNode & { _def: { label(): string } };
      return n._def.label.call(n);
    }, id);

  const batteries = '#node-input-batteries-container';
  const rowOf = (list: string, i: number) =>
    page.locator(`${list} > li`).nth(i).locator('.red-ui-editableList-item-content');

  it('qe-modbus: a row edited and one added (a duplicate asset flagged) are kept as typed', async () => {
    await importNodes([
      {
        id: 'mb',
        type: 'qe-modbus',
        coordinator: 'coord',
        connection: 'bus',
        batteries: [
          {
            assetId: 'ast_batt_001',
            unitId: 1,
            profile: 'generic',
            ratedChargeKw: 10,
            ratedDischargeKw: 10,
          },
        ],
        wires: [[], []],
      },
    ]);
    await edit('mb');
    const r0 = rowOf(batteries, 0);
    should(await r0.locator('.qe-modbus-assetId').inputValue()).equal('ast_batt_001');
    await type(r0.locator('.qe-modbus-ratedChargeKw'), '12.5');
    await r0.locator('.qe-modbus-more').click();
    await type(r0.locator('.qe-modbus-pollSeconds'), '2');
    await type(r0.locator('.qe-modbus-revertSeconds'), '30');
    // The watchdog must be below the revert time.
    await type(r0.locator('.qe-modbus-watchdogSeconds'), '40');
    should(await hasError(r0.locator('.qe-modbus-watchdogSeconds'))).be.true();
    await type(r0.locator('.qe-modbus-watchdogSeconds'), '10');
    should(await hasError(r0.locator('.qe-modbus-watchdogSeconds'))).be.false();
    await r0.locator('.qe-modbus-onDeviation').selectOption('reapply');

    await page.locator('.node-input-batteries-row .red-ui-editableList-addButton').click();
    const r1 = rowOf(batteries, 1);
    await type(r1.locator('.qe-modbus-assetId'), 'ast_batt_001');
    should(await hasError(r0.locator('.qe-modbus-assetId'))).be.true();
    should(await hasError(r1.locator('.qe-modbus-assetId'))).be.true();
    await type(r1.locator('.qe-modbus-assetId'), 'ast_batt_002');
    should(await hasError(r0.locator('.qe-modbus-assetId'))).be.false();
    await r1.locator('.qe-modbus-profile').selectOption('sunspec-704');
    // A SunSpec profile opens the row and asks for its base address.
    await r1.locator('.qe-modbus-baseAddress').waitFor({ state: 'visible' });
    should(await hasError(r1.locator('.qe-modbus-baseAddress'))).be.true();
    await type(r1.locator('.qe-modbus-baseAddress'), '40200');
    await type(r1.locator('.qe-modbus-ratedChargeKw'), '5');
    await type(r1.locator('.qe-modbus-ratedDischargeKw'), '6');
    should(await page.locator(`${batteries} .input-error`).count()).equal(0);
    await done();

    const node = await nodeOf('mb');
    should(node.batteries).eql([
      {
        assetId: 'ast_batt_001',
        profile: 'generic',
        unitId: 1,
        ratedChargeKw: 12.5,
        ratedDischargeKw: 10,
        pollSeconds: 2,
        watchdogSeconds: 10,
        revertSeconds: 30,
        onDeviation: 'reapply',
      },
      {
        assetId: 'ast_batt_002',
        profile: 'sunspec-704',
        ratedChargeKw: 5,
        ratedDischargeKw: 6,
        baseAddress: 40200,
      },
    ]);
    should(node.validationErrors ?? []).not.containEql('batteries');
    should(await labelOf('mb')).equal('ast_batt_001, ast_batt_002');
  });

  it("qe-modbus: a custom map starts as the runtime's generic map; a bad one shows the validator's error", async () => {
    await edit('mb');
    const r0 = rowOf(batteries, 0);
    await r0.locator('.qe-modbus-profile').selectOption('custom');
    const box = r0.locator('.qe-modbus-map');
    await page.waitForFunction(
      (sel) => String(($(sel) as JQuery).val() ?? '').trim() !== '',
      `${batteries} > li:first-child .qe-modbus-map`,
    );
    const served = JSON.parse(await box.inputValue()) as typeof GENERIC_MAP;
    should(served).eql(JSON.parse(JSON.stringify(GENERIC_MAP)));

    const bad = { ...served, setpoint: { ...served.setpoint, unit: 'MW' } };
    await type(box, JSON.stringify(bad, null, 2));
    const error = r0.locator('.qe-modbus-map-error');
    await error.waitFor({ state: 'visible' });
    await page.waitForFunction(
      (sel) => /setpoint\.unit/.test(document.querySelector(sel)?.textContent ?? ''),
      `${batteries} > li:first-child .qe-modbus-map-error`,
    );
    should(await error.textContent()).equal(
      'register map generic: setpoint.unit must be W, kW or percent, got "MW"',
    );
    should(await error.getAttribute('data-path')).equal('setpoint.unit');
    should(await hasError(box)).be.true();

    // Text that is not JSON: the parser's message, at once.
    await type(box, '{"setpoint": ');
    await page.waitForFunction(
      (sel) => !/setpoint\.unit/.test(document.querySelector(sel)?.textContent ?? ''),
      `${batteries} > li:first-child .qe-modbus-map-error`,
    );
    should(await error.textContent()).match(/JSON/);
    await type(box, JSON.stringify(bad, null, 2));
    await done();
    const node = await nodeOf('mb');
    const kept = (node.batteries as { profile: string }[])[0]?.profile ?? '';
    should(JSON.parse(kept)).eql(bad);
    should(node.validationErrors).containEql('batteries');
  });

  it('qe-modbus: a bad custom map imported without the dialog turns invalid once the runtime answers', async () => {
    const map = {
      ...GENERIC_MAP,
      name: 'far',
      telemetry: { soc: { address: 70000, type: 'uint16' } },
    };
    await importNodes([
      {
        id: 'mb2',
        type: 'qe-modbus',
        coordinator: 'coord',
        connection: 'bus',
        batteries: [
          {
            assetId: 'ast_far',
            profile: JSON.stringify(map),
            ratedChargeKw: 1,
            ratedDischargeKw: 1,
          },
        ],
        wires: [[], []],
      },
    ]);
    await page.waitForFunction(() =>
      (
        (globalThis as unknown as PageGlobal).RED.nodes.node('mb2')?.validationErrors ?? []
      ).includes('batteries'),
    );
  });

  it('qe-ocpp: the charger table, through the same code, keeps what was typed', async () => {
    await importNodes([
      { id: 'oc', type: 'qe-ocpp', coordinator: 'coord', server: 'csms', wires: [[], []] },
    ]);
    await edit('oc');
    const list = '#node-input-chargers-container';
    const r0 = rowOf(list, 0);
    await type(r0.locator('.qe-ocpp-identity'), 'CP 1');
    should(await hasError(r0.locator('.qe-ocpp-identity'))).be.true();
    await type(r0.locator('.qe-ocpp-identity'), 'CP001');
    should(await hasError(r0.locator('.qe-ocpp-identity'))).be.false();
    await type(r0.locator('.qe-ocpp-assetId'), 'ast_ev_001');
    await type(r0.locator('.qe-ocpp-ratedKw'), '22');
    await r0.locator('.qe-ocpp-unit').selectOption('A');
    await r0.locator('.qe-ocpp-more').click();
    await type(r0.locator('.qe-ocpp-phases'), '3');
    await type(r0.locator('.qe-ocpp-voltage'), '230');
    await type(r0.locator('.qe-ocpp-failsafeKw'), '30');
    should(await hasError(r0.locator('.qe-ocpp-failsafeKw'))).be.true();
    await type(r0.locator('.qe-ocpp-failsafeKw'), '6');
    await r0.locator('.qe-ocpp-confirm').selectOption('accepted');
    should(await page.locator(`${list} .input-error`).count()).equal(0);
    await done();
    const node = await nodeOf('oc');
    should(node.chargers).eql([
      {
        identity: 'CP001',
        assetId: 'ast_ev_001',
        ratedKw: 22,
        phases: 3,
        voltage: 230,
        failsafeKw: 6,
        unit: 'A',
        purpose: 'TxDefaultProfile',
        confirm: 'accepted',
      },
    ]);
    should(node.validationErrors ?? []).not.containEql('chargers');
    should(await labelOf('oc')).equal('CP001');
  });

  it('qe-schedule and qe-fleet refuse an asset map or rating that is not a JSON object', async () => {
    const results = await page.evaluate(() => {
      const RED = (globalThis as unknown as PageGlobal).RED;
      const inputs = ['', '{}', '{"ev_001": "ast_ev_001"}', '[1]', 'null', '{bad', '7'];
      return ['qe-schedule', 'qe-fleet'].flatMap((type) => {
        const defs = (
          RED.nodes.getType(type) as {
            defaults: Record<string, { validate: (v: unknown) => boolean }>;
          }
        ).defaults;
        return ['assetMap', 'ratedKw'].map((k) => inputs.map((v) => defs[k]?.validate(v)));
      });
    });
    const expected = [true, true, true, false, false, false, false];
    should(results).eql([expected, expected, expected, expected]);
  });

  for (const type of ['qe-schedule', 'qe-fleet']) {
    it(`${type}: the shared schedule fields show, check and save the node's values`, async () => {
      const id = `sf-${type}`;
      await importNodes([
        {
          id,
          type,
          coordinator: 'coord',
          ...(type === 'qe-fleet' ? { broker: 'broker', wires: [[], []] } : { wires: [[]] }),
          assetMap: '{"ev_001": "ast_ev_001"}',
          ratedKw: '{}',
          timeZone: 'Europe/Berlin',
          ignoreUnmapped: true,
          limitColumn: 'peak',
        },
      ]);
      await edit(id);
      const zone = page.locator('#node-input-timeZone');
      should(await zone.inputValue()).equal('Europe/Berlin');
      should(await page.locator('#node-input-assetMap').inputValue()).equal(
        '{"ev_001": "ast_ev_001"}',
      );
      should(await page.locator('#node-input-ignoreUnmapped').isChecked()).be.true();
      should(await page.locator('#node-input-limitColumn').inputValue()).equal('peak');
      // The labels come from the node's own messages.
      should(await page.locator('label[for="node-input-timeZone"]').textContent()).match(
        /Time zone/,
      );
      await zone.fill('Mars/Olympus_Mons');
      await zone.press('End');
      should(await hasError(zone)).be.true();
      await zone.fill('Europe/Paris');
      await zone.press('End');
      should(await hasError(zone)).be.false();
      await page.locator('#node-input-ignoreUnmapped').uncheck();
      await page.locator('#node-input-limitColumn').fill('peak_kw');
      if (type === 'qe-fleet')
        await page.locator('#node-input-eventTypes-list input[value="COMMAND_FAILED"]').check();
      await done();
      const node = await nodeOf(id);
      should(node).match({
        timeZone: 'Europe/Paris',
        ignoreUnmapped: false,
        limitColumn: 'peak_kw',
        assetMap: '{"ev_001": "ast_ev_001"}',
      });
      if (type === 'qe-fleet') should(node.eventTypes).eql(['COMMAND_FAILED']);
      should(node.validationErrors ?? []).eql([]);
    });
  }

  it("qe-events and qe-fleet pick from the core's event types, in its order", async () => {
    const listed = await page.evaluate(() =>
      (
        globalThis as unknown as { QeEditor: { events: { all(): string[] } } }
      ).QeEditor.events.all(),
    );
    should(listed).eql(Object.values(EventType));
    await importNodes([{ id: 'ev', type: 'qe-events', coordinator: 'coord' }]);
    await edit('ev');
    const boxes = page.locator('#node-input-eventTypes-list input[type=checkbox]');
    should(await boxes.evaluateAll((els) => els.map((e) => (e as HTMLInputElement).value))).eql(
      Object.values(EventType),
    );
    await page.locator('#node-input-eventTypes-none').click();
    await page.locator('#node-input-eventTypes-list input[value="ASSET_DEVIATION"]').check();
    await page.locator('#node-input-eventTypes-list input[value="COMMAND_CREATED"]').check();
    await done();
    const node = await nodeOf('ev');
    should(node).match({ eventTypes: ['COMMAND_CREATED', 'ASSET_DEVIATION'], outputs: 2 });
  });
});
