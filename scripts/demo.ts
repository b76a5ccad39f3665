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
 * Files: this one starts and stops everything (`main`); demo-setup.ts reads the
 * configuration, writes the flow with this run's ports and checks them; demo-output.ts
 * prints the lines; demo-fleet.ts runs the fleet's broker and central client.
 *
 * Environment: QE_DEMO_HOST (editor interface, default 127.0.0.1), QE_DEMO_PORT (editor,
 * 1880), QE_DEMO_OCPP_PORT (central system, 9220), QE_DEMO_MODBUS_PORT (battery, 5020),
 * QE_DEMO_USERDIR (Node-RED user directory, default <repo>/.demo), QE_DEMO_LOG_LEVEL
 * (Node-RED's console log level, default warn), QE_DEMO_MQTT_PORT (the in-process broker,
 * 1883), QE_MQTT_URL (a real broker instead, e.g. mqtt://host:1883).
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { LocalSettings } from '@node-red/runtime';
import type * as Core from '..';
import { startBroker, startCentral } from './demo-fleet';
import { EventPrinter, kw, logLine, type RuntimeNodes, say, stopOutput } from './demo-output';
import {
  assertFree,
  demoFlow,
  explainListen,
  listen,
  ROOT,
  readConfig,
  urlHost,
} from './demo-setup';

export { eventLine } from './demo-output';
export { demoFlow, readConfig } from './demo-setup';

const SHUTDOWN_TIMEOUT_MS = 10_000;

/** The simulated chargers: identities as in the demo flow's `OCPP chargers` node. */
const CHARGERS = [
  { identity: 'CP001', protocol: 'ocpp1.6', evMaxKw: 11 },
  { identity: 'CP002', protocol: 'ocpp2.0.1', evMaxKw: 22 },
] as const;

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
    stopOutput();
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
