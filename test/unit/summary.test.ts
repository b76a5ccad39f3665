/**
 * The one-line summaries (src/summary.ts): one for every EventType, made from events that a
 * real bus publishes, and the adapters' notes (results, charger events, telemetry, meter
 * readings). A test per case; a new EventType without a summary fails the first test.
 */
import should from 'should';
import { type CommandJSON, CommandStatus, CommandType } from '../../src/commands';
import { EVENT_TYPES, EventBus, EventType } from '../../src/event-bus';
import {
  fmtNumber,
  summarizeChargerEvent,
  summarizeCommand,
  summarizeEvent,
  summarizeReadings,
  summarizeResult,
  summarizeTelemetry,
} from '../../src/summary';

const command = (over: Partial<CommandJSON> = {}): CommandJSON => ({
  id: 'c1',
  assetId: 'ast_ev_001',
  type: CommandType.SET_CHARGE_RATE,
  valueKw: 7.4,
  scheduledAt: '2026-12-02T10:00:00.000Z',
  validUntil: null,
  status: CommandStatus.COMPLETED,
  priority: 0,
  attempts: 1,
  maxRetries: 3,
  timeoutSeconds: 30,
  scheduleId: 's1',
  source: null,
  lastError: null,
  holdReason: null,
  nextAttemptAt: null,
  deadline: null,
  createdAt: '2026-12-02T09:59:00.000Z',
  history: [{ status: CommandStatus.COMPLETED, at: '2026-12-02T10:00:01.000Z' }],
  ...over,
});

/** A sample payload for each type, published on a real bus. */
const samples: { [T in EventType]: [unknown, string] } = {
  COMMAND_CREATED: [command(), 'ast_ev_001 SET_CHARGE_RATE 7.4 kW CREATED'],
  COMMAND_DISPATCHED: [
    command({ reapplyOf: 'c0' }),
    'ast_ev_001 SET_CHARGE_RATE 7.4 kW (re-applied) DISPATCHED',
  ],
  COMMAND_ACKNOWLEDGED: [command(), 'ast_ev_001 SET_CHARGE_RATE 7.4 kW ACKNOWLEDGED'],
  COMMAND_COMPLETED: [command(), 'ast_ev_001 SET_CHARGE_RATE 7.4 kW COMPLETED'],
  COMMAND_FAILED: [
    command({
      history: [{ status: CommandStatus.FAILED, at: '2026-12-02T10:00:01Z', reason: 'Rejected' }],
    }),
    'ast_ev_001 SET_CHARGE_RATE 7.4 kW FAILED (Rejected)',
  ],
  COMMAND_TIMED_OUT: [
    command({ valueKw: 11.04999 }),
    'ast_ev_001 SET_CHARGE_RATE 11.05 kW TIMED_OUT',
  ],
  COMMAND_CANCELLED: [
    command({ askedKw: 11, valueKw: 5, limitedBy: 'circuit grid importKw (config)' }),
    'ast_ev_001 SET_CHARGE_RATE 5 kW (asked 11 kW, circuit grid importKw (config)) CANCELLED',
  ],
  STATE_CHANGED: [
    { assetId: 'bess', from_state: 'IDLE', to_state: 'CHARGING', trigger: 'start', forced: false },
    'bess IDLE -> CHARGING',
  ],
  SCHEDULE_RECEIVED: [
    {
      scheduleId: 'day-1',
      start: '2026-12-02T00:00:00.000Z',
      end: '2026-12-03T00:00:00.000Z',
      slotSeconds: 900,
      slots: 96,
      assets: ['a', 'b'],
      ignoredColumns: [],
      unmappedColumns: [],
      commandCount: 192,
    },
    'schedule day-1: 96 slots of 900 s from 00:00:00 UTC, 2 assets, 192 commands',
  ],
  ASSET_DEVIATION: [
    {
      assetId: 'bess',
      setpointKw: 7.4,
      measuredKw: 11,
      since: '2026-12-02T10:00:15.000Z',
      reason: '11 kW > 7.4 kW limit',
    },
    'bess DEVIATION: 11 kW > 7.4 kW limit since 10:00:15 UTC',
  ],
  ASSET_COMPLIANT: [
    { assetId: 'bess', setpointKw: 11, measuredKw: 10.96, since: 'x', deviatedForMs: 31_600 },
    'bess compliant again after 32 s: 10.96 kW for a 11 kW setpoint',
  ],
  SETPOINT_LIMITED: [
    {
      assetId: 'ast_ev_002',
      commandId: 'c2',
      askedKw: 11,
      kw: 5,
      boundBy: 'circuit grid importKw (config)',
      reason: 'meter building',
    },
    'ast_ev_002 limited 11 -> 5 kW (circuit grid importKw (config)) after meter building',
  ],
  LIMITS_CHANGED: [
    {
      limits: [
        { scope: 'circuit', target: 'grid', limit: 'importKw', value: 42, source: 'config' },
        {
          scope: 'circuit',
          target: 'grid',
          limit: 'importA',
          value: 32,
          source: 'dso',
          until: Date.parse('2026-12-02T18:00:00Z'),
        },
      ],
      staleMeters: ['building'],
    },
    'limits: grid importKw <= 42 kW (config), grid importA <= 32 A (dso) until 18:00:00; stale: building',
  ],
  OPTIMISER_SILENT: [
    {
      scheduleId: 'day-1',
      receivedAt: '2026-12-02T08:00:00Z',
      silentForSeconds: 900.4,
      assets: ['bess'],
      commandIds: ['f1'],
    },
    'optimiser silent for 900 s (last schedule day-1): 1 fallback setpoint for bess',
  ],
};

describe('summary: one line for what the package publishes', () => {
  it('summarizes an event of every EventType as the bus publishes it', () => {
    const bus = new EventBus();
    const seen: string[] = [];
    bus.subscribe('*', (e) => seen.push(summarizeEvent(e)));
    for (const type of EVENT_TYPES) {
      const [payload] = samples[type];
      if (payload === undefined) throw new Error(`no sample for ${type}`);
      bus.publish(type, payload as never);
    }
    should(seen).eql(EVENT_TYPES.map((t) => samples[t][1]));
  });

  it('says when a re-allocation gives what was asked, and why a setpoint waits', () => {
    const base = { assetId: 'b', commandId: 'c', reason: 'meter building' };
    should(
      summarizeEvent({
        type: EventType.SETPOINT_LIMITED,
        payload: { ...base, askedKw: -5, kw: -5, boundBy: null },
      }),
    ).equal('b -5 kW as asked (meter building)');
    should(
      summarizeEvent({
        type: EventType.SETPOINT_LIMITED,
        payload: { ...base, askedKw: 11, kw: 0, boundBy: null },
      }),
    ).equal('b limited 11 -> 0 kW (meter building)');
    should(
      summarizeEvent({ type: EventType.LIMITS_CHANGED, payload: { limits: [], staleMeters: [] } }),
    ).equal('limits: none');
  });

  it('summarizes a command, and a result of one (ok, failed, final, a watchdog re-write)', () => {
    should(summarizeCommand(command({ valueKw: -20, type: CommandType.SET_DISCHARGE_RATE }))).equal(
      'ast_ev_001 SET_DISCHARGE_RATE -20 kW',
    );
    should(summarizeResult({ commandId: 'c1', success: true, command: command() })).equal(
      'ast_ev_001 SET_CHARGE_RATE 7.4 kW: ok',
    );
    should(
      summarizeResult({ success: false, error: 'Rejected', final: true, command: command() }),
    ).equal('ast_ev_001 SET_CHARGE_RATE 7.4 kW: failed: Rejected (final)');
    should(summarizeResult({ commandId: 'c9', success: false, error: new Error('timeout') })).equal(
      'command c9: failed: timeout',
    );
    should(
      summarizeResult({ rewrite: 'watchdog-rewrite', assetId: 'b1', kw: 40, success: true }),
    ).equal('b1 watchdog-rewrite 40 kW: ok');
  });

  it("summarizes a charger's events", () => {
    should(
      summarizeChargerEvent({ type: 'connected', identity: 'CP001', protocol: 'ocpp1.6' } as never),
    ).equal('CP001 connected: ocpp1.6');
    should(summarizeChargerEvent({ type: 'disconnected', identity: 'CP001' })).equal(
      'CP001 disconnected',
    );
    should(
      summarizeChargerEvent({
        type: 'meter',
        identity: 'CP002',
        connector: 1,
        transactionId: 'tx1',
        readings: [{ timestamp: 't', powerW: 7360 }],
      } as never),
    ).equal('CP002 meter: transaction tx1, 7360 W');
    should(
      summarizeChargerEvent({
        type: 'status',
        identity: 'CP001',
        protocol: 'ocpp1.6',
        connector: 1,
        status: 'Faulted',
        errorCode: 'GroundFailure',
      } as never),
    ).equal('CP001 status: ocpp1.6, Faulted, GroundFailure');
    should(
      summarizeChargerEvent({
        type: 'failsafe',
        identity: 'CP1',
        message: 'applied 4.2 kW',
      } as never),
    ).equal('CP1 failsafe: applied 4.2 kW');
  });

  it("summarizes a battery's telemetry and meter readings with what they limited", () => {
    should(
      summarizeTelemetry({ assetId: 'b1', socPercent: 55.123, powerKw: -10, state: 'DISCHARGING' }),
    ).equal('b1: SoC 55.12 %, -10 kW, DISCHARGING');
    should(summarizeTelemetry({ assetId: 'b1' })).equal('b1: no reading');
    const limited = {
      assetId: 'ev2',
      commandId: 'c',
      askedKw: 11,
      kw: 5,
      boundBy: 'circuit grid importKw (config)',
      reason: 'meter building',
    };
    should(summarizeReadings([{ meter: 'building', kw: 28.44 }], [limited])).equal(
      'building 28.44 kW: ev2 limited 11 -> 5 kW (circuit grid importKw (config)) after meter building',
    );
    should(summarizeReadings([{ meter: 'hp', a: [16, 15, 14] }], [])).equal(
      'hp 16/15/14 A: no setpoint limited',
    );
    should(summarizeReadings([{ meter: 'm', kw: 1 }], [limited, limited])).equal(
      'm 1 kW: 2 setpoints limited',
    );
    should(fmtNumber(Number.NaN)).equal('?');
    should(fmtNumber(-0.001)).equal('0');
  });
});
