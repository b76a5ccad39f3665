#!/usr/bin/env node
/**
 * qe-sim-charger: simulated OCPP charge points on the command line.
 *
 *   qe-sim-charger --url ws://127.0.0.1:9220/ocpp --id CP001 --protocol ocpp1.6 \
 *     [--password x] [--ev-max-kw 11] [--plug-in] [--start] [--count N]
 *
 * Prints one line per event; SIGINT / SIGTERM close the connections cleanly.
 */

import { parseArgs } from 'node:util';
import { ChargePointSimulator, type OcppProtocol } from './charge-point';
import { closeOnSignals, numberOption as number, runCli } from './cli';

const USAGE = `Usage: qe-sim-charger --url <ws://host:port/path> --id <identity> [options]

Options:
  --url <url>              central system URL without the identity (required)
  --id <identity>          charge point identity (required); with --count, the first of N
  --protocol <p>           ocpp1.6 (default) or ocpp2.0.1
  --password <pw>          HTTP Basic password (OCPP security profile 1)
  --ev-max-kw <kW>         the most the EV draws (default 11)
  --meter-interval <s>     meter values every s seconds (default 10, 0: none)
  --soc <percent>          initial EV state of charge (reports SoC)
  --plug-in                plug an EV in after booting
  --start                  plug in and start charging after booting
  --count <N>              N chargers in this process: CP001, CP002, ... (default 1)
  -h, --help               this text
`;

/** The identities of `count` chargers from the first: CP001 -> CP001, CP002, ... */
export function identities(first: string, count: number): string[] {
  const m = /^(.*?)(\d+)$/.exec(first);
  return Array.from({ length: count }, (_, i) => {
    if (i === 0) return first;
    if (!m) return `${first}-${i + 1}`;
    const [, prefix = '', digits = ''] = m;
    return prefix + String(Number(digits) + i).padStart(digits.length, '0');
  });
}

function line(identity: string, event: string, detail?: unknown): void {
  const text =
    detail === undefined ? '' : ` ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`;
  process.stdout.write(`${new Date().toISOString()} ${identity} ${event}${text}\n`);
}

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      url: { type: 'string' },
      id: { type: 'string' },
      protocol: { type: 'string', default: 'ocpp1.6' },
      password: { type: 'string' },
      'ev-max-kw': { type: 'string' },
      'meter-interval': { type: 'string' },
      soc: { type: 'string' },
      'plug-in': { type: 'boolean', default: false },
      start: { type: 'boolean', default: false },
      count: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (!values.url || !values.id) throw new Error('--url and --id are required');
  const protocol = values.protocol as OcppProtocol;
  if (protocol !== 'ocpp1.6' && protocol !== 'ocpp2.0.1') {
    throw new Error(`--protocol must be ocpp1.6 or ocpp2.0.1, got ${values.protocol}`);
  }
  const count = number('count', values.count, 1);
  if (!Number.isInteger(count) || count < 1) throw new Error('--count must be an integer >= 1');
  const soc = values.soc === undefined ? undefined : number('soc', values.soc, 0);

  const sims = identities(values.id, count).map((identity) => {
    const sim = new ChargePointSimulator({
      endpoint: values.url as string,
      identity,
      protocol,
      password: values.password,
      evMaxKw: number('ev-max-kw', values['ev-max-kw'], 11),
      meterIntervalMs: number('meter-interval', values['meter-interval'], 10) * 1000,
      initialSocPercent: soc,
    });
    sim.on('connected', () => line(identity, 'connected', protocol));
    sim.on('disconnected', (e: { code?: number; reason?: string }) =>
      line(identity, 'disconnected', e),
    );
    sim.on('booted', (res) => line(identity, 'booted', res));
    sim.on('call', (method: string, params: unknown) => line(identity, `<- ${method}`, params));
    sim.on('profile', (w: number | null) =>
      line(identity, 'limit', w === null ? 'none' : `${w} W`),
    );
    sim.on('power', (w: number) => line(identity, 'power', `${w} W`));
    sim.on('warning', (err: Error) => line(identity, 'warning', err.message));
    return sim;
  });

  const shutdown = closeOnSignals((signal) => {
    process.stdout.write(`${signal}: closing ${sims.length} charger(s)\n`);
    return Promise.all(sims.map((s) => s.stop()));
  });

  const run = Promise.all(
    sims.map(async (sim) => {
      const res = await sim.start();
      if (res.status !== 'Accepted' || shutdown.closing) return;
      if (values['plug-in'] || values.start) {
        await sim.plugIn();
        line(sim.identity, 'status', sim.status);
      }
      if (values.start) {
        await sim.startCharging();
        line(sim.identity, 'status', `${sim.status}, transaction ${sim.transactionId}`);
      }
    }),
  );
  try {
    await run;
  } catch (err) {
    // A start that the shutdown interrupted is not an error.
    if (shutdown.closing) return;
    shutdown.begin('error');
    throw err;
  }
}

if (require.main === module) runCli('qe-sim-charger', USAGE, main);
