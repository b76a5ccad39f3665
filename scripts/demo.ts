/**
 * The demo of `npm start`: a local Node-RED with this package, the demo dispatch flow
 * (scripts/demo-flow.json) and simulated devices, all in this one process.
 *
 *   npm run build && node --import tsx scripts/demo.ts
 *
 * - Node-RED is the project's devDependency, started through its embedding API
 *   (`RED.init(server, settings)`), with its own user directory (`.demo/` in the repository
 *   unless QE_DEMO_USERDIR says otherwise). It loads this package through `nodesDir`
 *   pointing at the repository root: the root's package.json has a `node-red` section, so
 *   Node-RED loads it as a module, exactly as it would from `<userDir>/node_modules` (its
 *   nodes, icons, locales, and examples under Import > Examples), without npm, a network,
 *   or a symlink.
 * - The demo flow is written into the user directory on every start, with the ports of this
 *   run, and deployed by Node-RED when it starts: a schedule in the optimiser's format goes
 *   2 s after deploy, moved to start now with 15-second slots.
 * - The simulators from src/sim (built into dist/) run in this process: a charger on OCPP
 *   1.6 (CP001), one on OCPP 2.0.1 (CP002), each with an EV charging, and a battery behind a
 *   Modbus TCP server. Being in-process, they cannot outlive the demo.
 * - The fleet link: an MQTT broker (aedes) runs in this process, unless QE_MQTT_URL names a
 *   real one, and the flow has two sites (`demo-depot` and `demo-depot-2`, each with a
 *   qe-fleet node on that broker). A central client in this process plays the optimiser of
 *   the fleet: when a site comes online (its retained presence) it publishes one schedule to
 *   it, and prints the site's ack (both in scripts/demo-fleet.ts).
 * - The terminal shows the editor's URL and one line per event of each coordinator's
 *   EventBus (command lifecycle, state changes, schedules), tagged with the coordinator's
 *   siteId (`-` on lines of no site), plus what the devices were told.
 * - SIGINT (Ctrl-C) or SIGTERM: the chargers disconnect, Node-RED stops its flows (closing
 *   the central system and the Modbus connection), the battery and the HTTP server close,
 *   and the process exits with 0; a shutdown that takes longer than 10 s exits with 1.
 *
 * Environment: QE_DEMO_HOST (editor interface, default 127.0.0.1), QE_DEMO_PORT (editor,
 * 1880), QE_DEMO_OCPP_PORT (central system, 9220), QE_DEMO_MODBUS_PORT (battery, 5020),
 * QE_DEMO_USERDIR (Node-RED user directory, default <repo>/.demo), QE_DEMO_LOG_LEVEL
 * (Node-RED's console log level, default warn), QE_DEMO_MQTT_PORT (the in-process broker,
 * 1883), QE_MQTT_URL (a real broker instead, e.g. mqtt://host:1883).
 */
import fs from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { inspect } from 'node:util';
import type { LocalSettings } from '@node-red/runtime';
import type * as Core from '..';
import { startBroker, startCentral } from './demo-fleet';

const ROOT = path.resolve(__dirname, '..');
const FLOW_FILE = path.join(__dirname, 'demo-flow.json');
const SHUTDOWN_TIMEOUT_MS = 10_000;

/** The simulated chargers: identities as in the demo flow's `OCPP chargers` node. */
const CHARGERS = [
  { identity: 'CP001', protocol: 'ocpp1.6', evMaxKw: 11 },
  { identity: 'CP002', protocol: 'ocpp2.0.1', evMaxKw: 22 },
] as const;

// --- configuration

interface DemoConfig {
  host: string;
  port: number;
  ocppPort: number;
  modbusPort: number;
  userDir: string;
  logLevel: string;
  mqttPort: number;
  /** A real broker to use instead of the in-process one; null: the in-process one. */
  mqttUrl: string | null;
}

function portFrom(name: string, fallback: number, allowZero: boolean): number {
  const text = process.env[name];
  if (text === undefined || text.trim() === '') return fallback;
  const n = Number(text);
  const min = allowZero ? 0 : 1;
  if (!Number.isInteger(n) || n < min || n > 65535) {
    throw new Error(`${name} must be a TCP port from ${min} to 65535, got ${JSON.stringify(text)}`);
  }
  return n;
}

export function readConfig(): DemoConfig {
  const logLevel = (process.env.QE_DEMO_LOG_LEVEL ?? '').trim() || 'warn';
  const levels = ['off', 'fatal', 'error', 'warn', 'info', 'debug', 'trace'];
  if (!levels.includes(logLevel)) {
    throw new Error(`QE_DEMO_LOG_LEVEL must be one of ${levels.join(', ')}, got ${logLevel}`);
  }
  return {
    host: (process.env.QE_DEMO_HOST ?? '').trim() || '127.0.0.1',
    port: portFrom('QE_DEMO_PORT', 1880, true),
    // The flow must name the central system's port before it starts: no "any free port".
    ocppPort: portFrom('QE_DEMO_OCPP_PORT', 9220, false),
    modbusPort: portFrom('QE_DEMO_MODBUS_PORT', 5020, true),
    userDir: path.resolve(process.env.QE_DEMO_USERDIR?.trim() || path.join(ROOT, '.demo')),
    logLevel,
    mqttPort: portFrom('QE_DEMO_MQTT_PORT', 1883, true),
    mqttUrl: mqttUrlFrom(process.env.QE_MQTT_URL),
  };
}

function mqttUrlFrom(text: string | undefined): string | null {
  const url = (text ?? '').trim();
  if (url === '') return null;
  if (!/^(mqtts?|wss?):\/\/[^/\s]+/.test(url)) {
    throw new Error(
      `QE_MQTT_URL must be a broker URL like mqtt://host:1883, got ${JSON.stringify(url)}`,
    );
  }
  return url;
}

// --- the flow

interface FlowNode {
  id: string;
  type: string;
  [key: string]: unknown;
}

/** The demo flow with this run's ports for the central system and the battery's bus, and
 * the URL of the fleet broker. */
export function demoFlow(ocppPort: number, modbusPort: number, mqttUrl: string): FlowNode[] {
  const flow = JSON.parse(fs.readFileSync(FLOW_FILE, 'utf8')) as FlowNode[];
  for (const n of flow) {
    if (n.type === 'qe-ocpp-server') {
      Object.assign(n, { host: '127.0.0.1', port: ocppPort, name: `central system :${ocppPort}` });
    } else if (n.type === 'qe-fleet-broker') {
      Object.assign(n, { url: mqttUrl, name: `fleet broker ${mqttUrl}` });
    } else if (n.type === 'qe-modbus-connection') {
      Object.assign(n, {
        host: '127.0.0.1',
        port: modbusPort,
        name: `battery simulator :${modbusPort}`,
      });
    }
  }
  return flow;
}

// --- output

const pad = (text: string, width: number) => text.padEnd(width);
const time = (d = new Date()) => {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
};

/** Set when stdout is closed (`npm start | head`): the demo then stops. */
let stdoutClosed = false;

/** Width of the site column: the longest siteId followed so far, at least 10. */
let siteWidth = 10;
/** The site column of a line that belongs to no site (the demo, its devices, Node-RED). */
const NO_SITE = '-';

/** One line of the demo's output: time, site, kind, subject, then the rest. */
function sayFor(site: string, kind: string, subject: string, text: string): void {
  if (stdoutClosed) return;
  process.stdout.write(
    `${time()}  ${pad(site, siteWidth)}  ${pad(kind, 8)} ${pad(subject, 12)} ${text}\n`,
  );
}

/** A line that belongs to no site. */
const say = (kind: string, subject: string, text: string) => sayFor(NO_SITE, kind, subject, text);

const kw = (x: number) => `${Math.round(x * 1000) / 1000} kW`;

/**
 * The line of one bus event, without time and site. Command events read
 * `<time>  <siteId>  command  <asset>  <COMMAND_TYPE>  <value> kW  <STATUS>[  <detail>]`.
 */
export function eventLine(e: Core.AnyBusEvent): [string, string, string] {
  switch (e.type) {
    case 'STATE_CHANGED': {
      const p = e.payload;
      return [
        'state',
        p.assetId,
        `${p.from_state} -> ${p.to_state}${p.reason ? `  (${p.reason})` : ''}`,
      ];
    }
    case 'SCHEDULE_RECEIVED': {
      const p = e.payload;
      return [
        'schedule',
        p.scheduleId,
        `${p.slots} slots of ${p.slotSeconds} s from ${time(new Date(p.start))}, ${p.commandCount} commands for ${p.assets.join(', ')}`,
      ];
    }
    case 'ASSET_DEVIATION': {
      const p = e.payload;
      return ['deviation', p.assetId, p.reason];
    }
    case 'ASSET_COMPLIANT': {
      const p = e.payload;
      return [
        'compliant',
        p.assetId,
        `${kw(p.measuredKw)} for setpoint ${kw(p.setpointKw)} (deviated ${Math.round(p.deviatedForMs / 1000)} s)`,
      ];
    }
    case 'SETPOINT_LIMITED': {
      const p = e.payload;
      return [
        'limited',
        p.assetId,
        `${kw(p.askedKw)} -> ${kw(p.kw)}${p.boundBy ? `  (${p.boundBy})` : ''}`,
      ];
    }
    case 'LIMITS_CHANGED': {
      const p = e.payload;
      const stale = p.staleMeters.length > 0 ? `; stale: ${p.staleMeters.join(', ')}` : '';
      const limits = p.limits.map((l) => `${l.target} ${l.limit} ${l.value} (${l.source})`);
      return ['limits', '-', `${limits.join(', ')}${stale}`];
    }
    case 'OPTIMISER_SILENT': {
      const p = e.payload;
      return [
        'silence',
        p.scheduleId,
        `no schedule for ${p.silentForSeconds} s: fallback for ${p.assets.join(', ')}`,
      ];
    }
    default: {
      const c = e.payload;
      const status = e.type.replace(/^COMMAND_/, '');
      let detail = '';
      if (status === 'DISPATCHED' && c.attempts > 1) detail = `attempt ${c.attempts}`;
      else if ((status === 'FAILED' || status === 'TIMED_OUT') && c.lastError) detail = c.lastError;
      else if (status === 'CREATED') detail = `at ${time(new Date(c.scheduledAt))}`;
      return [
        'command',
        c.assetId,
        `${pad(c.type, 20)} ${kw(c.valueKw).padStart(9)}  ${pad(status, 12)}${detail ? ` ${detail}` : ''}`.trimEnd(),
      ];
    }
  }
}

/** Node-RED's log levels, by number. */
const LEVELS: Record<number, string> = {
  10: 'fatal',
  20: 'error',
  30: 'warn',
  40: 'info',
  50: 'debug',
  60: 'trace',
};
/** Warnings that every start of an embedded Node-RED gives and that mean nothing here. */
const START_UP_NOISE = [/^Projects disabled/, /^Encrypted credentials not found/];

/** A Node-RED log handler: one line each, as `node-red <level> [type:name] message`. */
function logLine(m: { level: number; msg: unknown; type?: string; name?: string }): void {
  const text = typeof m.msg === 'string' ? m.msg : inspect(m.msg);
  if (START_UP_NOISE.some((r) => r.test(text))) return;
  const who = m.type ? `[${m.type}${m.name ? `:${m.name}` : ''}] ` : '';
  say('node-red', LEVELS[m.level] ?? String(m.level), `${who}${text}`);
}

// --- the runtime's internals that we read (not in @types/node-red)

interface RuntimeNodes {
  getNode(id: string): unknown;
  eachNode(cb: (n: { id: string; type: string }) => void): void;
}

/**
 * Follows the EventBus of every coordinator in the deployed flows, again after a deploy;
 * each event's line carries the siteId of its coordinator, so that the sites of a flow with
 * several coordinators can be told apart.
 */
class EventPrinter {
  private readonly subs = new Map<string, { site: Core.Site; off: Core.Unsubscribe }>();

  constructor(private readonly nodes: RuntimeNodes) {}

  follow(): void {
    const seen = new Set<string>();
    this.nodes.eachNode((n) => {
      if (n.type !== 'qe-coordinator') return;
      const site = (this.nodes.getNode(n.id) as { site?: Core.Site | null } | null)?.site;
      if (!site) return;
      seen.add(n.id);
      const current = this.subs.get(n.id);
      if (current?.site === site) return;
      current?.off();
      siteWidth = Math.max(siteWidth, site.siteId.length);
      const off = site.eventBus.subscribe('*', (e) => sayFor(site.siteId, ...eventLine(e)));
      this.subs.set(n.id, { site, off });
    });
    for (const [id, s] of this.subs) {
      if (!seen.has(id)) {
        s.off();
        this.subs.delete(id);
      }
    }
  }

  close(): void {
    for (const s of this.subs.values()) s.off();
    this.subs.clear();
  }
}

// --- helpers

function listen(server: http.Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Rejects with a clear error if `port` is taken (the central system would only log it). */
async function assertFree(port: number, host: string, what: string): Promise<void> {
  const probe = net.createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, host, () => resolve());
    });
  } catch (err) {
    throw explainListen(err, port, what);
  }
  await new Promise((resolve) => probe.close(resolve));
}

function explainListen(err: unknown, port: number, what: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') {
    return new Error(`port ${port} (${what}) is in use: stop what uses it or set another port`);
  }
  return new Error(`${what} cannot listen on port ${port}: ${(err as Error).message}`);
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

// --- main

async function main(): Promise<void> {
  const config = readConfig();
  if (!fs.existsSync(path.join(ROOT, 'dist', 'index.js'))) {
    throw new Error('the package is not built: run `npm run build` first (`npm start` does)');
  }
  // After the check, so that a missing build gets the sentence above.
  const core = require('..') as typeof Core;
  const RED = require('node-red') as typeof import('node-red');
  const redVersion = (require('node-red/package.json') as { version: string }).version;

  const chargers: Core.ChargePointSimulator[] = [];
  let battery: Core.BatterySimulator | null = null;
  let server: http.Server | null = null;
  let fleetBroker: { port: number; close(): Promise<void> } | null = null;
  let central: { close(): Promise<void> } | null = null;
  let redStart: Promise<void> | null = null;
  const printer = new EventPrinter(RED.nodes as unknown as RuntimeNodes);
  const onFlowsStarted = () => printer.follow();

  // Shutdown, once, bounded; a second signal exits at once.
  let stopping: Promise<void> | null = null;
  const shutdown = (why: string, code: number): Promise<void> => {
    if (stopping) return stopping;
    const force = setTimeout(() => {
      process.stderr.write(`demo: shutdown took more than ${SHUTDOWN_TIMEOUT_MS / 1000} s\n`);
      process.exit(1);
    }, SHUTDOWN_TIMEOUT_MS);
    force.unref();
    say('demo', '', `${why}: stopping`);
    stopping = (async () => {
      RED.events.off('flows:started', onFlowsStarted);
      printer.close();
      await Promise.allSettled(chargers.map((c) => c.stop()));
      await central?.close();
      if (redStart) {
        await redStart.catch(() => {});
        // The sites' gateways say offline and disconnect here, before the broker goes.
        await RED.stop();
      }
      await fleetBroker?.close();
      await battery?.close();
      if (server?.listening) {
        server.closeAllConnections();
        await new Promise((resolve) => server?.close(resolve));
      }
    })().then(
      () => {
        say('demo', '', 'stopped');
        process.exit(code);
      },
      (err: Error) => {
        process.stderr.write(`demo: shutdown failed: ${err.stack ?? err.message}\n`);
        process.exit(1);
      },
    );
    return stopping;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (stopping) {
        process.stderr.write(`demo: ${signal} again, exiting now\n`);
        process.exit(1);
      }
      void shutdown(signal, 0);
    });
  }
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    stdoutClosed = true;
    void shutdown('stdout closed', 0);
  });
  process.on('uncaughtException', (err) => {
    process.stderr.write(`demo: uncaught exception: ${err.stack ?? err.message}\n`);
    void shutdown('error', 1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`demo: unhandled rejection: ${(err as Error)?.stack ?? String(err)}\n`);
    void shutdown('error', 1);
  });
  const stopped = () => stopping !== null;

  try {
    // The user directory and the flow of this run.
    fs.mkdirSync(config.userDir, { recursive: true });
    if (config.userDir.startsWith(ROOT + path.sep)) {
      // Keeps the demo's files out of git (and Biome) even before .gitignore names them.
      fs.writeFileSync(path.join(config.userDir, '.gitignore'), '*\n');
    }
    // The battery first, so that the Modbus connection finds it when the flow starts.
    battery = new core.BatterySimulator({
      host: '127.0.0.1',
      port: config.modbusPort,
      unitIds: [1],
      capacityKwh: 100,
      initialSocPercent: 50,
      maxChargeKw: 50,
      maxDischargeKw: 50,
    });
    let modbusPort: number;
    try {
      modbusPort = await battery.start();
    } catch (err) {
      battery = null;
      throw explainListen(err, config.modbusPort, 'QE_DEMO_MODBUS_PORT, the battery');
    }
    battery.on('setpoint', (unitId: number, requestedKw: number) =>
      say('device', 'battery', `unit ${unitId} setpoint ${kw(requestedKw)}`),
    );
    battery.on('warning', (err: Error) => say('device', 'battery', `warning: ${err.message}`));
    // The fleet broker: a real one (QE_MQTT_URL), or one in this process.
    let mqttUrl = config.mqttUrl;
    if (mqttUrl === null) {
      try {
        fleetBroker = await startBroker(config.mqttPort);
      } catch (err) {
        throw explainListen(err, config.mqttPort, 'QE_DEMO_MQTT_PORT, the fleet broker');
      }
      mqttUrl = `mqtt://127.0.0.1:${fleetBroker.port}`;
    }
    const flow = demoFlow(config.ocppPort, modbusPort, mqttUrl);
    fs.writeFileSync(path.join(config.userDir, 'flows.json'), `${JSON.stringify(flow, null, 2)}\n`);
    await assertFree(config.ocppPort, '127.0.0.1', 'QE_DEMO_OCPP_PORT, the central system');
    if (stopped()) return;

    // Node-RED on our own HTTP server: the editor and its API, then the flows' http in nodes.
    type Handler = (q: http.IncomingMessage, s: http.ServerResponse, next: () => void) => void;
    server = http.createServer((req, res) => {
      const notFound = () => {
        res.statusCode = 404;
        res.end('Not found');
      };
      const admin = RED.httpAdmin as unknown as Handler;
      const nodes = RED.httpNode as unknown as Handler | undefined;
      admin(req, res, () => (nodes ? nodes(req, res, notFound) : notFound()));
    });
    const settings = {
      uiHost: config.host,
      uiPort: config.port,
      userDir: config.userDir,
      flowFile: 'flows.json',
      nodesDir: [ROOT],
      httpAdminRoot: '/',
      httpNodeRoot: '/',
      // A fixed key: none to generate (and warn about); the demo flow has no credentials.
      credentialSecret: 'qe-demo',
      // Node-RED's log in the demo's own line format, without its start-up chatter.
      logging: {
        console: { level: 'off' },
        demo: { level: config.logLevel, metrics: false, audit: false, handler: () => logLine },
      },
      // Offline: no npm, no palette installs, no update checks.
      externalModules: {
        autoInstall: false,
        palette: { allowInstall: false, allowUpload: false },
        modules: { allowInstall: false },
      },
      functionExternalModules: false,
      telemetry: { enabled: false },
      editorTheme: { tours: false },
    };
    RED.init(server, settings as unknown as LocalSettings);
    let editorPort: number;
    try {
      editorPort = await listen(server, config.port, config.host);
    } catch (err) {
      throw explainListen(err, config.port, 'QE_DEMO_PORT, the editor');
    }
    if (stopped()) return;
    RED.events.on('flows:started', onFlowsStarted);
    redStart = Promise.resolve(RED.start());
    await redStart;
    if (stopped()) return;

    const url = `http://${urlHost(config.host)}:${editorPort}/`;
    say('demo', '', `Node-RED ${redVersion} editor at ${url}`);
    if (!['127.0.0.1', 'localhost', '::1'].includes(config.host)) {
      say('demo', '', `warning: the editor listens on ${config.host} without a login`);
    }
    say(
      'demo',
      '',
      config.mqttUrl
        ? `fleet broker ${mqttUrl} (QE_MQTT_URL)`
        : `fleet broker ${mqttUrl}, in this process (QE_MQTT_URL=mqtt://host:1883 npm start uses a real one)`,
    );
    say('demo', '', 'Ctrl-C stops Node-RED and the simulators');

    // The fleet's central client: one schedule to each site as it comes online.
    const sites = flow
      .filter((n) => n.type === 'qe-coordinator')
      .map((n) => String(n.siteId))
      .filter((id) =>
        flow.some(
          (f) => f.type === 'qe-fleet' && flow.find((c) => c.id === f.coordinator)?.siteId === id,
        ),
      );
    central = await startCentral(mqttUrl, sites, {
      core,
      stopped,
      say: (siteId, text) => say('fleet', siteId, text),
    });
    if (stopped()) return;

    // The chargers, once the central system of the deployed flow listens (they retry).
    const ocpp = flow.find((n) => n.type === 'qe-ocpp-server');
    const endpoint = `ws://127.0.0.1:${config.ocppPort}${String(ocpp?.path ?? '/ocpp')}`;
    for (const spec of CHARGERS) {
      const sim = new core.ChargePointSimulator({
        endpoint,
        identity: spec.identity,
        protocol: spec.protocol,
        evMaxKw: spec.evMaxKw,
        meterIntervalMs: 5000,
        backoff: { initialDelay: 250, maxDelay: 5000 },
      });
      chargers.push(sim);
      sim.on('connected', () => say('device', spec.identity, `connected (${spec.protocol})`));
      sim.on('profile', (w: number | null) =>
        say('device', spec.identity, `limit ${w === null ? 'none' : `${w} W`}`),
      );
      sim.on('warning', (err: Error) => {
        // Until the central system listens, the simulator retries quietly.
        const waiting = !sim.connected && /ECONNREFUSED/.test(err.message);
        if (!stopped() && !waiting) say('device', spec.identity, `warning: ${err.message}`);
      });
      void (async () => {
        try {
          const res = await sim.start();
          if (stopped()) return;
          if (res.status !== 'Accepted') {
            say('device', spec.identity, `boot ${res.status}`);
            return;
          }
          await sim.plugIn();
          await sim.startCharging();
          say('device', spec.identity, `EV plugged in and charging (${sim.status})`);
        } catch (err) {
          if (!stopped())
            say('device', spec.identity, `failed to start: ${(err as Error).message}`);
        }
      })();
    }
  } catch (err) {
    process.stderr.write(`demo: ${(err as Error).message}\n`);
    await shutdown('could not start', 1);
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    process.stderr.write(`demo: ${err.message}\n`);
    process.exit(1);
  });
}
