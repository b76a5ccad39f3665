#!/usr/bin/env node
/**
 * qe-sim-charger: simulated OCPP charge points on the command line.
 *
 *   qe-sim-charger --url ws://127.0.0.1:9220/ocpp --id CP001 --protocol ocpp1.6 \
 *     [--password x] [--ev-max-kw 11] [--plug-in] [--start] [--count N] [--json]
 *
 * Prints one line per event (with --json, one JSON object a line: time, event, id, ...;
 * every change of the limit a charger applies is a `limit` line with limitW and powerW).
 * Reads commands on stdin, one a line, to play faults from a test in another process:
 * `drop CP001 2000` (the network drops, back after 2 s without booting), `reboot CP001`,
 * and the others in USAGE; each is answered `ok ...` or `error ...`. SIGINT / SIGTERM (or
 * the `quit` command) close the connections cleanly. Quirks of real chargers, for tests of
 * what a central system confirms: --ignore-profile, --no-composite-schedule,
 * --no-smart-charging, --min-current <A>, --apply-delay <ms>, --honour-unit <W|A> (see USAGE).
 */

import { parseArgs } from 'node:util';
import {
  ChargePointSimulator,
  type LimitChange,
  type Ocpp16ErrorCode,
  type OcppProtocol,
} from './charge-point';
import {
  COMMON_OPTIONS,
  controlled,
  helpAsked,
  nonNegative,
  numberOption as number,
  type Print,
  printer,
  runCli,
} from './cli';

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
  --resume-on-reconnect    after a lost connection, resume without BootNotification
                           (default: boot again)
  --json                   print one JSON object a line: {time, event, id, ...}

Quirks of real chargers (for tests of what a central system confirms):
  --ignore-profile         answer SetChargingProfile Accepted and apply nothing
  --no-composite-schedule  answer GetCompositeSchedule with NotImplemented
  --no-smart-charging      answer SetChargingProfile with NotImplemented
  --min-current <A>        raise a limit above 0 and below A per phase to A (e.g. 6); 0 pauses
  --apply-delay <ms>       apply an accepted profile only ms later (the composite schedule
                           gives the old limit until then)
  --honour-unit <W|A>      follow limits in this unit only: a profile in the other unit is
                           answered Accepted and ignored
  -h, --help               this text

Commands on stdin, one a line (<id>: an identity, or all), each answered "ok <command>" or
"error <command>: <why>":
  drop <id> [ms] [clean]   the network drops (socket destroyed; clean: close frame 1001) and
                           the charger is back after ms (default 5000) without booting
  reboot <id> [ms] [keep-profiles] [abrupt]
                           reboot: the transaction ends, the profiles are forgotten (unless
                           keep-profiles), back after ms (default 1000) with BootNotification
  plug-in <id> | start <id> [idTag] | stop <id> | unplug <id>
  fault <id> [errorCode] | clear-fault <id>
  state <id>               prints status, transaction, limit and power ("state" lines)
  limits <id>              prints the history of the limits applied ("limits" lines)
  quit                     closes the chargers and exits
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

/** One charger's line: `<id> <event> <detail>`, or in JSON `{event, id, ...fields}`. */
function charger(print: Print) {
  return (identity: string, event: string, detail?: unknown, fields?: Record<string, unknown>) => {
    const text =
      detail === undefined
        ? ''
        : ` ${typeof detail === 'string' ? detail : JSON.stringify(detail)}`;
    const json = fields ?? (detail === undefined ? {} : { detail });
    print(event, { id: identity, ...json }, `${identity} ${event}${text}`);
  };
}

const limitFields = (c: LimitChange) => ({
  at: new Date(c.at).toISOString(),
  limitW: c.limitW,
  powerW: c.powerW,
});

/** Runs one command of the control channel on the chargers it names. */
export async function command(
  sims: ChargePointSimulator[],
  words: string[],
  line: ReturnType<typeof charger>,
  quit: () => void,
): Promise<void> {
  const [verb, target, ...rest] = words;
  if (verb === 'quit') return quit();
  if (!target) throw new Error(`${verb}: name a charger (or all)`);
  const chosen = target === 'all' ? sims : sims.filter((s) => s.identity === target);
  if (chosen.length === 0) throw new Error(`no charger ${target}`);
  const flags = new Set(rest.filter((w) => !/^\d/.test(w)));
  const ms = (fallback: number) =>
    nonNegative(
      `${verb}: ms`,
      rest.find((w) => /^\d/.test(w)),
      fallback,
    );
  const only = (...allowed: string[]) => {
    const bad = [...flags].filter((f) => !allowed.includes(f));
    if (bad.length) throw new Error(`${verb}: unknown ${bad.join(' ')}`);
  };
  const each = (fn: (s: ChargePointSimulator) => unknown) =>
    Promise.all(chosen.map(fn)).then(() => undefined);
  switch (verb) {
    case 'drop':
      only('clean');
      return each((s) =>
        s.dropConnection({ reconnectAfterMs: ms(5000), clean: flags.has('clean') }),
      );
    case 'reboot':
      only('keep-profiles', 'abrupt');
      return each((s) =>
        s.reboot({
          downMs: ms(1000),
          keepProfiles: flags.has('keep-profiles'),
          clean: !flags.has('abrupt'),
        }),
      );
    case 'plug-in':
      return each((s) => s.plugIn());
    case 'start':
      return each((s) => s.startCharging(rest[0]));
    case 'stop':
      return each((s) => s.stopCharging());
    case 'unplug':
      return each((s) => s.unplug());
    case 'fault':
      return each((s) => s.fault((rest[0] ?? 'InternalError') as Ocpp16ErrorCode));
    case 'clear-fault':
      return each((s) => s.clearFault());
    case 'state':
      return each((s) => {
        const state = {
          connected: s.connected,
          status: s.status,
          transactionId: s.transactionId,
          limitW: s.activeLimitW,
          powerW: s.powerW,
          energyWh: Math.round(s.energyWh * 10) / 10,
        };
        line(s.identity, 'state', state, state);
      });
    case 'limits':
      return each((s) => {
        const history = s.limitHistory.map(limitFields);
        line(s.identity, 'limits', history, { history });
      });
    default:
      throw new Error(`unknown command ${verb} (see --help)`);
  }
}

/** The command line options (see USAGE). */
const OPTIONS = {
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
  'resume-on-reconnect': { type: 'boolean', default: false },
  'ignore-profile': { type: 'boolean', default: false },
  'no-composite-schedule': { type: 'boolean', default: false },
  'no-smart-charging': { type: 'boolean', default: false },
  'min-current': { type: 'string' },
  'apply-delay': { type: 'string' },
  'honour-unit': { type: 'string' },
  ...COMMON_OPTIONS,
} as const;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: OPTIONS, strict: true });
  if (helpAsked(values, USAGE)) return;
  if (!values.url || !values.id) throw new Error('--url and --id are required');
  const protocol = values.protocol as OcppProtocol;
  if (protocol !== 'ocpp1.6' && protocol !== 'ocpp2.0.1') {
    throw new Error(`--protocol must be ocpp1.6 or ocpp2.0.1, got ${values.protocol}`);
  }
  const count = number('count', values.count, 1);
  if (!Number.isInteger(count) || count < 1) throw new Error('--count must be an integer >= 1');
  const soc = values.soc === undefined ? undefined : number('soc', values.soc, 0);
  const minCurrentA =
    values['min-current'] === undefined
      ? undefined
      : nonNegative('--min-current', values['min-current'], 0);
  const applyDelayMs = nonNegative('--apply-delay', values['apply-delay'], 0);
  const honourUnit = values['honour-unit'];
  if (honourUnit !== undefined && honourUnit !== 'W' && honourUnit !== 'A')
    throw new Error(`--honour-unit must be W or A, got ${honourUnit}`);
  const print = printer(values.json ?? false);
  const line = charger(print);

  const sims = identities(values.id, count).map((identity) => {
    const sim = new ChargePointSimulator({
      endpoint: values.url as string,
      identity,
      protocol,
      password: values.password,
      evMaxKw: number('ev-max-kw', values['ev-max-kw'], 11),
      meterIntervalMs: number('meter-interval', values['meter-interval'], 10) * 1000,
      initialSocPercent: soc,
      bootOnReconnect: !values['resume-on-reconnect'],
      ...(values['ignore-profile'] ? { quirk: 'ignore-profile' as const } : {}),
      compositeSchedule: !values['no-composite-schedule'],
      smartCharging: !values['no-smart-charging'],
      minCurrentA,
      applyDelayMs,
      ...(honourUnit ? { honourUnit: honourUnit as 'W' | 'A' } : {}),
    });
    sim.on('connected', () => line(identity, 'connected', protocol));
    sim.on('disconnected', (e: { code?: number; reason?: string }) =>
      line(identity, 'disconnected', e),
    );
    sim.on('booted', (res) => line(identity, 'booted', res));
    sim.on('call', (method: string, params: unknown) =>
      print(
        'call',
        { id: identity, method, params },
        `${identity} <- ${method} ${JSON.stringify(params)}`,
      ),
    );
    sim.on('profile', (w: number | null, change: LimitChange) =>
      line(identity, 'limit', w === null ? 'none' : `${w} W`, limitFields(change)),
    );
    sim.on('dropped', (e: unknown) => line(identity, 'dropped', e));
    sim.on('resumed', () => line(identity, 'resumed'));
    sim.on('rebooting', (e: unknown) => line(identity, 'rebooting', e));
    sim.on('power', (w: number) => line(identity, 'power', `${w} W`));
    sim.on('warning', (err: Error) => line(identity, 'warning', err.message));
    return sim;
  });

  const shutdown = controlled(
    (signal) => {
      const text = `${signal}: closing ${sims.length} charger(s)`;
      print('closing', { reason: signal, chargers: sims.length }, text);
      return Promise.all(sims.map((s) => s.stop()));
    },
    (words, quit) => command(sims, words, line, quit),
    print,
  );

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
