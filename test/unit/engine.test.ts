import should from 'should';
import {
  type Adapter,
  AdapterError,
  AdapterRegistry,
  type AdapterResult,
} from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus, CommandType, commandToJSON } from '../../src/commands';
import { DispatchEngine, type EngineConfig, resolveConfig } from '../../src/engine';
import { type AnyBusEvent, EventBus, EventType } from '../../src/event-bus';
import { createBatteryStateMachine, createEvChargerStateMachine } from '../../src/state-machine';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const H = 3600_000;
const S = 1000;

/** An adapter that records commands and answers as told (undefined: answers later). */
class RecordingAdapter implements Adapter {
  readonly protocol = 'test';
  readonly sent: { id: string; valueKw: number; attempt: number }[] = [];
  answer: (cmd: Command) => AdapterResult | undefined | Promise<AdapterResult | undefined> =
    () => ({
      success: true,
    });
  dispatch(cmd: Command) {
    this.sent.push({ id: cmd.id, valueKw: cmd.valueKw, attempt: cmd.attempts });
    return this.answer(cmd);
  }
}

function setup(config: Partial<EngineConfig> = {}, start = T0) {
  const clock = new ManualClock(start);
  const bus = new EventBus({ clock });
  const registry = new AdapterRegistry();
  const adapter = new RecordingAdapter();
  const engine = new DispatchEngine({ eventBus: bus, adapterRegistry: registry, config, clock });
  const events: AnyBusEvent[] = [];
  bus.subscribe('*', (e) => events.push(e));
  const types = () => events.map((e) => e.type);
  return { clock, bus, registry, adapter, engine, events, types };
}

/** The seed's worked example: 22 kW at 08:00, 09:00, 10:00, then 0 at 11:00. */
const seedSchedule = {
  columns: ['ev_ev_001_kw', 'price_per_kwh'],
  index: [
    '2025-06-02T08:00:00Z',
    '2025-06-02T09:00:00Z',
    '2025-06-02T10:00:00Z',
    '2025-06-02T11:00:00Z',
  ],
  data: [
    [22, 0.3],
    [22, 0.3],
    [22, 0.31],
    [0, 0.2],
  ],
};

function evSchedule(values: (number | null)[], start = T0, stepMs = H, col = 'ev_ev_001_kw') {
  return values.map((v, i) => ({
    timestamp: new Date(start + i * stepMs).toISOString(),
    [col]: v,
  }));
}

describe('DispatchEngine', () => {
  describe('config', () => {
    it('has the seed’s defaults and ours', () => {
      const { engine } = setup();
      should(engine.config).have.properties({
        dispatchIntervalSeconds: 5,
        commandTimeoutSeconds: 30,
        maxRetries: 3,
        retryBackoffFactor: 2,
        staleStateSeconds: 60,
        retryBaseSeconds: 2,
        retryMaxSeconds: 60,
        deadbandKw: 0.001,
        horizonEnd: 'hold',
      });
    });

    it('names the setting that is wrong', () => {
      should(() => resolveConfig({ maxRetries: -1 })).throw(
        /maxRetries must be an integer >= 0, got -1/,
      );
      should(() => resolveConfig({ maxRetries: 1.5 })).throw(/maxRetries must be an integer/);
      should(() => resolveConfig({ commandTimeoutSeconds: 0 })).throw(
        /commandTimeoutSeconds must be a number > 0/,
      );
      should(() => resolveConfig({ retryBackoffFactor: 0.5 })).throw(
        /retryBackoffFactor must be a number >= 1/,
      );
      should(() => resolveConfig({ deadbandKw: Number.NaN })).throw(/deadbandKw/);
      should(() => resolveConfig({ timeout: 3 } as never)).throw(/unknown setting "timeout"/);
      should(() => resolveConfig({ horizonEnd: 'drop' as never })).throw(
        /horizonEnd must be 'hold'/,
      );
    });
  });

  describe('schedules to commands', () => {
    it('the seed example gives exactly two commands, 22 kW at 08:00 and 0 kW at 11:00', () => {
      const { engine, types, events } = setup();
      const cmds = engine.scheduleToCommands(seedSchedule, {
        assetMap: { ev_001: 'ast_ev_001' },
        scheduleId: 'seed',
      });
      should(cmds.map((c) => [c.assetId, c.type, c.valueKw, c.scheduledAt.toISOString()])).eql([
        ['ast_ev_001', CommandType.SET_CHARGE_RATE, 22, '2025-06-02T08:00:00.000Z'],
        ['ast_ev_001', CommandType.SET_CHARGE_RATE, 0, '2025-06-02T11:00:00.000Z'],
      ]);
      should(types()).eql(['SCHEDULE_RECEIVED', 'COMMAND_CREATED', 'COMMAND_CREATED']);
      const summary = events[0]?.payload as {
        scheduleId: string;
        commandCount: number;
        ignoredColumns: string[];
      };
      should(summary.scheduleId).equal('seed');
      should(summary.commandCount).equal(2);
      should(summary.ignoredColumns).eql(['price_per_kwh']);
      should(cmds[0]).have.properties({
        status: 'PENDING',
        priority: 1,
        attempts: 0,
        maxRetries: 3,
        timeoutSeconds: 30,
      });
      should(cmds[0]?.validUntil?.toISOString()).equal('2025-06-02T11:00:00.000Z');
      should(cmds[1]?.validUntil).be.null();
    });

    it('a command event carries the command in JSON form', () => {
      const { engine, events } = setup();
      engine.scheduleToCommands(seedSchedule, { assetMap: { ev_001: 'a' }, scheduleId: 's' });
      const created = events.find((e) => e.type === EventType.COMMAND_CREATED);
      should(created?.payload).have.properties({
        assetId: 'a',
        valueKw: 22,
        scheduledAt: '2025-06-02T08:00:00.000Z',
        status: 'PENDING',
      });
      should(JSON.parse(JSON.stringify(created?.payload))).eql(created?.payload);
    });

    it('uses the engine’s deadband', () => {
      const { engine } = setup({ deadbandKw: 0.5 });
      const cmds = engine.scheduleToCommands(evSchedule([10, 10.4, 10.6]), {
        assetMap: { ev_001: 'a' },
      });
      should(cmds.map((c) => c.valueKw)).eql([10, 10.6]);
    });

    it('a bad schedule changes nothing', () => {
      const { engine, types } = setup();
      should(() =>
        engine.scheduleToCommands(evSchedule([10, -5]), { assetMap: { ev_001: 'a' } }),
      ).throw(/row 1/);
      should(engine.stats().total).equal(0);
      should(types()).eql([]);
    });
  });

  describe('due commands', () => {
    it('a command is due at its slot start, not before, and stays pending until dispatched', () => {
      const { engine, clock } = setup({}, T0 - 10 * S);
      engine.scheduleToCommands(seedSchedule, { assetMap: { ev_001: 'a' } });
      should(engine.getPendingCommands()).have.length(0);
      should(engine.nextWakeAt()).equal(T0);
      clock.set(T0);
      const due = engine.getPendingCommands();
      should(due.map((c) => c.valueKw)).eql([22]);
      should(engine.getPendingCommands(T0 + 1)).have.length(1);
      should(engine.getPendingCommands(new Date(T0 + 3 * H))).have.length(1);
    });

    it('orders due commands by priority, then age', () => {
      const { engine } = setup();
      engine.submit([
        {
          id: 'low',
          assetId: 'a',
          type: CommandType.SET_CHARGE_RATE,
          valueKw: 1,
          scheduledAt: T0 - S,
        },
        {
          id: 'high',
          assetId: 'b',
          type: CommandType.SET_CHARGE_RATE,
          valueKw: 2,
          scheduledAt: T0,
          priority: 5,
        },
        {
          id: 'older',
          assetId: 'c',
          type: CommandType.SET_CHARGE_RATE,
          valueKw: 3,
          scheduledAt: T0 - 2 * S,
        },
      ]);
      should(engine.getPendingCommands(T0).map((c) => c.id)).eql(['high', 'older', 'low']);
    });

    it('selecting due commands does not look at commands that are not due', () => {
      const { engine } = setup();
      const input = [];
      for (let a = 0; a < 1000; a++) {
        for (let s = 0; s < 100; s++) {
          input.push({
            id: `c${a}-${s}`,
            assetId: `a${a}`,
            type: CommandType.SET_CHARGE_RATE,
            valueKw: s,
            scheduledAt: T0 + s * 15 * 60 * S,
          });
        }
      }
      engine.submit(input);
      should(engine.stats().pending).equal(100_000);
      // Count reads of `status` on every command: a scan would read all 100,000.
      let reads = 0;
      for (const c of engine.getCommands()) {
        let status = c.status;
        Object.defineProperty(c, 'status', {
          get: () => {
            reads++;
            return status;
          },
          set: (v) => {
            status = v;
          },
        });
      }
      const due = engine.getPendingCommands(T0);
      should(due).have.length(1000);
      should(reads).be.below(5000);
    });
  });

  describe('dispatch and answers', () => {
    it('PENDING -> DISPATCHED -> ACKNOWLEDGED -> COMPLETED with events in that order', async () => {
      const { engine, registry, adapter, types } = setup();
      registry.register('a', adapter);
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 7 });
      const status = await engine.dispatchCommand(cmd as Command, registry.get('a'));
      should(status).equal(CommandStatus.COMPLETED);
      should(types()).eql([
        'COMMAND_CREATED',
        'COMMAND_DISPATCHED',
        'COMMAND_ACKNOWLEDGED',
        'COMMAND_COMPLETED',
      ]);
      should(cmd?.history.map((h) => h.status)).eql([
        'PENDING',
        'DISPATCHED',
        'ACKNOWLEDGED',
        'COMPLETED',
      ]);
      should(cmd?.attempts).equal(1);
      should(adapter.sent).eql([{ id: cmd?.id, valueKw: 7, attempt: 1 }]);
      should(engine.getPendingCommands()).have.length(0);
    });

    it('completed: false leaves it ACKNOWLEDGED until a read-back confirms it', async () => {
      const { engine, registry, adapter } = setup();
      registry.register('a', adapter);
      adapter.answer = () => ({ success: true, completed: false });
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 7 });
      should(await engine.dispatchCommand(cmd as Command)).equal(CommandStatus.ACKNOWLEDGED);
      should(engine.handleResponse(cmd as Command, true, null, { completed: false })).be.true();
      should(cmd?.status).equal(CommandStatus.ACKNOWLEDGED);
      should(engine.complete((cmd as Command).id)).be.true();
      should(cmd?.status).equal(CommandStatus.COMPLETED);
      should(engine.handleResponse(cmd as Command, true)).be.false();
    });

    it('an adapter that answers later: handleResponse drives the lifecycle', async () => {
      const { engine, registry, adapter } = setup();
      registry.register('a', adapter);
      adapter.answer = () => undefined;
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 7 });
      should(await engine.dispatchCommand(cmd as Command)).equal(CommandStatus.DISPATCHED);
      should(cmd?.deadline?.getTime()).equal(T0 + 30 * S);
      engine.handleResponse((cmd as Command).id, true);
      should(cmd?.status).equal(CommandStatus.COMPLETED);
    });

    it('retries a transient failure with backoff 2, 4, 8 s, then FAILED after 1 + 3 attempts', async () => {
      const { engine, registry, adapter, clock, types } = setup();
      registry.register('a', adapter);
      adapter.answer = () => ({ success: false, error: 'charger busy' });
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 7 });
      const c = cmd as Command;
      const waits: number[] = [];
      for (let attempt = 1; attempt <= 4; attempt++) {
        const due = engine.getPendingCommands();
        should(due.map((x) => x.id)).eql([c.id]);
        await engine.dispatchCommand(c);
        if (attempt < 4) {
          should(c.status).equal(CommandStatus.PENDING);
          const wait = (c.nextAttemptAt as Date).getTime() - clock.now();
          waits.push(wait);
          clock.advance(wait - 1);
          should(engine.getPendingCommands()).have.length(0);
          clock.advance(1);
        }
      }
      should(waits).eql([2 * S, 4 * S, 8 * S]);
      should(c.status).equal(CommandStatus.FAILED);
      should(c.attempts).equal(4);
      should(c.lastError).equal('charger busy');
      should(adapter.sent).have.length(4);
      should(types().filter((t) => t === 'COMMAND_DISPATCHED')).have.length(4);
      should(types().at(-1)).equal('COMMAND_FAILED');
    });

    it('caps the backoff at retryMaxSeconds', () => {
      const { engine } = setup({
        retryBaseSeconds: 10,
        retryBackoffFactor: 3,
        retryMaxSeconds: 60,
      });
      should([1, 2, 3, 4].map((n) => engine.backoffSeconds(n))).eql([10, 30, 60, 60]);
    });

    it('an explicit rejection fails at once, without retry', async () => {
      const { engine, registry, adapter } = setup();
      registry.register('a', adapter);
      adapter.answer = () => ({ success: false, final: true, error: 'Rejected' });
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 7 });
      should(await engine.dispatchCommand(cmd as Command)).equal(CommandStatus.FAILED);
      should(cmd?.attempts).equal(1);
      should(cmd?.lastError).equal('Rejected');
      should(cmd?.history.at(-1)?.reason).equal('refused: Rejected');
    });

    it('an adapter that throws is a transient failure; AdapterError with final is a rejection', async () => {
      const { engine, registry, adapter } = setup();
      registry.register('a', adapter);
      adapter.answer = () => {
        throw new Error('socket closed');
      };
      const [c1] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 1 });
      should(await engine.dispatchCommand(c1 as Command)).equal(CommandStatus.PENDING);
      should(c1?.lastError).equal('socket closed');
      adapter.answer = () => Promise.reject(new AdapterError('NotSupported', { final: true }));
      const [c2] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 2 });
      should(await engine.dispatchCommand(c2 as Command)).equal(CommandStatus.FAILED);
      should(c2?.lastError).equal('NotSupported');
    });

    it('fails a command for an asset that no adapter serves, saying so', async () => {
      const { engine, registry, adapter, types } = setup();
      registry.register('other', adapter);
      const [cmd] = engine.submit({
        assetId: 'ghost',
        type: CommandType.SET_CHARGE_RATE,
        valueKw: 1,
      });
      should(await engine.dispatchCommand(cmd as Command)).equal(CommandStatus.FAILED);
      should(cmd?.lastError).match(/no adapter serves asset ghost.*registered assets: other/);
      should(cmd?.attempts).equal(0);
      should(types().at(-1)).equal('COMMAND_FAILED');
    });

    it('does not dispatch a command that is not PENDING', async () => {
      const { engine, registry, adapter } = setup();
      registry.register('a', adapter);
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 1 });
      engine.cancel(cmd as Command);
      should(await engine.dispatchCommand(cmd as Command)).equal(CommandStatus.CANCELLED);
      should(adapter.sent).have.length(0);
      await should(engine.dispatchCommand('nope')).be.rejectedWith(/unknown command nope/);
    });

    it('markDispatched lets a host deliver the command itself', () => {
      const { engine } = setup();
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 1 });
      engine.markDispatched((cmd as Command).id);
      should(cmd?.status).equal(CommandStatus.DISPATCHED);
      should(() => engine.markDispatched(cmd as Command)).throw(
        /cannot go from DISPATCHED to DISPATCHED/,
      );
    });
  });

  describe('timeouts', () => {
    it('an unanswered attempt times out after timeoutSeconds and is retried; the last one is TIMED_OUT', async () => {
      const { engine, registry, adapter, clock, types } = setup({ maxRetries: 1 });
      registry.register('a', adapter);
      adapter.answer = () => undefined;
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 1 });
      const c = cmd as Command;
      await engine.dispatchCommand(c);
      should(engine.nextWakeAt()).equal(T0 + 30 * S);
      should(engine.checkTimeouts(T0 + 30 * S - 1)).have.length(0);
      clock.set(T0 + 30 * S);
      should(engine.checkTimeouts().map((x) => x.id)).eql([c.id]);
      should(c.status).equal(CommandStatus.PENDING);
      should(c.lastError).equal('no answer within 30 s (attempt 1)');
      should(c.nextAttemptAt?.getTime()).equal(T0 + 32 * S);
      clock.set(T0 + 32 * S);
      await engine.dispatchCommand(engine.getPendingCommands()[0] as Command);
      clock.advance(30 * S);
      should(engine.checkTimeouts()).have.length(1);
      should(c.status).equal(CommandStatus.TIMED_OUT);
      should(types().at(-1)).equal('COMMAND_TIMED_OUT');
      // A late answer to a finished command is ignored.
      should(engine.handleResponse(c, true)).be.false();
      should(c.status).equal(CommandStatus.TIMED_OUT);
    });

    it('FAILED, not TIMED_OUT, when the last attempt failed rather than timed out', async () => {
      const { engine, registry, adapter, clock } = setup({ maxRetries: 1 });
      registry.register('a', adapter);
      adapter.answer = () => undefined;
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 1 });
      const c = cmd as Command;
      await engine.dispatchCommand(c);
      clock.advance(30 * S);
      engine.checkTimeouts();
      clock.advance(2 * S);
      await engine.dispatchCommand(c);
      engine.handleResponse(c, false, 'busy');
      should(c.status).equal(CommandStatus.FAILED);
    });

    it('an answer after its attempt timed out does not count', async () => {
      const { engine, registry, adapter, clock } = setup();
      registry.register('a', adapter);
      adapter.answer = () => undefined;
      const [cmd] = engine.submit({ assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 1 });
      await engine.dispatchCommand(cmd as Command);
      clock.advance(31 * S);
      engine.checkTimeouts();
      should(engine.handleResponse(cmd as Command, true)).be.false();
      should(cmd?.status).equal(CommandStatus.PENDING);
    });

    it('schedules no retry past the command’s validUntil', async () => {
      const { engine, registry, adapter } = setup({ commandTimeoutSeconds: 5 });
      registry.register('a', adapter);
      adapter.answer = () => ({ success: false, error: 'busy' });
      const [cmd] = engine.submit({
        assetId: 'a',
        type: CommandType.SET_CHARGE_RATE,
        valueKw: 1,
        scheduledAt: T0,
        validUntil: T0 + 1500,
      });
      await engine.dispatchCommand(cmd as Command);
      should(cmd?.status).equal(CommandStatus.FAILED);
      should(cmd?.history.at(-1)?.reason).match(
        /no retry: the slot ends at 2025-06-02T08:00:01.500Z/,
      );
    });
  });

  describe('supersession and expiry', () => {
    it('a new schedule cancels older schedules’ unfinished commands for the same assets from its first slot on', async () => {
      const { engine, clock, events, registry, adapter } = setup({}, T0 - H);
      registry.register('a', adapter);
      registry.register('b', adapter);
      const old = engine.scheduleToCommands(
        {
          columns: ['ev_1_kw', 'ev_2_kw'],
          index: [0, 1, 2, 3].map((i) => new Date(T0 + i * H).toISOString()),
          data: [
            [1, 5],
            [2, 5],
            [3, 5],
            [4, 6],
          ],
        },
        { assetMap: { '1': 'a', '2': 'b' }, scheduleId: 'old' },
      );
      should(old.map((c) => `${c.assetId}@${c.source?.slot}`)).eql([
        'a@0',
        'a@1',
        'a@2',
        'a@3',
        'b@0',
        'b@3',
      ]);
      clock.set(T0);
      adapter.answer = () => undefined;
      await engine.dispatchCommand(old[0] as Command); // a@0 in flight
      const fresh = engine.scheduleToCommands(evSchedule([9, 9], T0 + H, H, 'ev_1_kw'), {
        assetMap: { '1': 'a' },
        scheduleId: 'new',
      });
      should(fresh).have.length(1);
      const status = (i: number) => old[i]?.status;
      should([0, 1, 2, 3].map(status)).eql(['DISPATCHED', 'CANCELLED', 'CANCELLED', 'CANCELLED']);
      should(old[1]?.lastError).equal('superseded by schedule new');
      should([4, 5].map(status)).eql(['PENDING', 'PENDING']); // asset b untouched
      should(old[0]?.validUntil?.getTime()).equal(T0 + H); // truncated to the new start (it was already)
      should(events.filter((e) => e.type === 'COMMAND_CANCELLED')).have.length(3);
    });

    it('truncates the validity of an older command that is still in force', () => {
      const { engine } = setup({}, T0);
      const old = engine.scheduleToCommands(evSchedule([5, 5, 5, 5]), {
        assetMap: { ev_001: 'a' },
        scheduleId: 'old',
      });
      should(old[0]?.validUntil).be.null();
      engine.scheduleToCommands(evSchedule([7], T0 + 2 * H, H), {
        assetMap: { ev_001: 'a' },
        scheduleId: 'new',
        slotSeconds: 3600,
      });
      should(old[0]?.status).equal(CommandStatus.PENDING);
      should(old[0]?.validUntil?.getTime()).equal(T0 + 2 * H);
    });

    it('a schedule sent again with the same id is a new revision that supersedes the first', () => {
      const { engine } = setup();
      const first = engine.scheduleToCommands(seedSchedule, {
        assetMap: { ev_001: 'a' },
        scheduleId: 'day',
      });
      const second = engine.scheduleToCommands(seedSchedule, {
        assetMap: { ev_001: 'a' },
        scheduleId: 'day',
      });
      should(second[0]?.scheduleId).equal('day#2');
      should(first.map((c) => c.status)).eql(['CANCELLED', 'CANCELLED']);
      should(engine.uniqueScheduleId('day')).equal('day#3');
    });

    it('a schedule that carries its own id, sent twice, is revision id then id#2', () => {
      const { engine, types } = setup();
      const carried = { scheduleId: 'day', total_cost: 1.5, schedule: seedSchedule };
      const first = engine.scheduleToCommands(carried, { assetMap: { ev_001: 'a' } });
      const second = engine.scheduleToCommands(JSON.stringify(carried), {
        assetMap: { ev_001: 'a' },
      });
      should(first.map((c) => c.id)).eql(['day:a:0', 'day:a:3']);
      should(second.map((c) => c.id)).eql(['day#2:a:0', 'day#2:a:3']);
      should(first.map((c) => c.status)).eql(['CANCELLED', 'CANCELLED']);
      should(first[0]?.lastError).equal('superseded by schedule day#2');
      should(types().filter((t) => t === 'SCHEDULE_RECEIVED')).have.length(2);
      // An explicit id wins over the carried one, with the same revision rule.
      const third = engine.scheduleToCommands(carried, {
        assetMap: { ev_001: 'a' },
        scheduleId: 'day',
      });
      should(third[0]?.scheduleId).equal('day#3');
      // A carried id that names a revision already used becomes the next one.
      const fourth = engine.scheduleToCommands(
        { ...carried, scheduleId: 'day#2' },
        { assetMap: { ev_001: 'a' } },
      );
      should(fourth[0]?.scheduleId).equal('day#4');
      should(engine.uniqueScheduleId('day#9')).equal('day#9');
    });

    it('hasScheduleId says whether an id (or a later revision of it) was used', () => {
      const { engine } = setup();
      should(engine.hasScheduleId('day')).be.false();
      engine.scheduleToCommands(seedSchedule, { assetMap: { ev_001: 'a' }, scheduleId: 'day' });
      should(engine.hasScheduleId('day')).be.true();
      should(engine.hasScheduleId('day#2')).be.false();
      should(engine.hasScheduleId('night')).be.false();
      engine.scheduleToCommands(seedSchedule, { assetMap: { ev_001: 'a' }, scheduleId: 'day' });
      should(engine.hasScheduleId('day#2')).be.true();
      should(engine.hasScheduleId('day#3')).be.false();
      // Revisions are kept with the engine's state.
      const restored = DispatchEngine.restore(JSON.parse(JSON.stringify(engine.toJSON())), {});
      should(restored.hasScheduleId('day#2')).be.true();
      should(restored.hasScheduleId('day#3')).be.false();
    });

    it('receiveSchedule picks the id and publishes the summary, but registers nothing', () => {
      const { engine, events } = setup();
      const conversion = engine.receiveSchedule(
        { scheduleId: 'day', schedule: seedSchedule },
        { assetMap: { ev_001: 'a' } },
      );
      should(conversion.scheduleId).equal('day');
      should(conversion.commands.map((c) => c.id)).eql(['day:a:0', 'day:a:3']);
      should(engine.stats().total).equal(0);
      should(events.map((e) => e.type)).eql(['SCHEDULE_RECEIVED']);
      should(events[0]?.payload).have.properties({ scheduleId: 'day', commandCount: 2 });
      // The id is taken: the commands can be submitted, and the same schedule again is day#2.
      engine.submit(conversion.commands);
      should(engine.stats().pending).equal(2);
      const again = engine.receiveSchedule(
        { scheduleId: 'day', schedule: seedSchedule },
        { assetMap: { ev_001: 'a' } },
      );
      should(again.scheduleId).equal('day#2');
      // A bad schedule changes nothing: no id taken, nothing published.
      should(() =>
        engine.receiveSchedule(
          {
            scheduleId: 'other',
            schedule: {
              ...seedSchedule,
              data: [
                [-5, 0],
                [1, 0],
                [1, 0],
                [1, 0],
              ],
            },
          },
          { assetMap: { ev_001: 'a' } },
        ),
      ).throw(/row 0 \(2025-06-02T08:00:00Z\), column ev_ev_001_kw: -5 kW is negative/);
      should(engine.uniqueScheduleId('other')).equal('other');
      should(events.filter((e) => e.type === 'SCHEDULE_RECEIVED')).have.length(2);
    });

    it('a setpoint is never sent for a slot that has ended: only the current slot goes out', () => {
      const { engine, types } = setup({}, T0);
      engine.scheduleToCommands(evSchedule([1, 2, 3, 4]), { assetMap: { ev_001: 'a' } });
      const due = engine.getPendingCommands(T0 + 2 * H + 10 * S);
      should(due.map((c) => c.valueKw)).eql([3]);
      const cancelled = engine.getCommands({ status: CommandStatus.CANCELLED });
      should(cancelled.map((c) => c.valueKw).sort()).eql([1, 2]);
      should(cancelled[0]?.lastError).match(/^expired: its slot ended at/);
      should(types().filter((t) => t === 'COMMAND_CANCELLED')).have.length(2);
    });
  });

  describe('holds', () => {
    it('holds commands of a FAULTED asset and releases them when its state changes', () => {
      const { engine, bus, clock } = setup({}, T0);
      const m = createEvChargerStateMachine({ assetId: 'a', eventBus: bus, clock });
      engine.registerStateMachine(m);
      engine.scheduleToCommands(evSchedule([5, 6]), { assetMap: { ev_001: 'a' } });
      m.trigger('fault');
      should(engine.getPendingCommands(T0)).have.length(0);
      const held = engine.getHeldCommands('a');
      should(held.map((c) => c.valueKw)).eql([5]);
      should(held[0]?.holdReason).equal('asset a is FAULTED');
      should(held[0]?.status).equal(CommandStatus.PENDING);
      should(engine.stats().held).equal(1);
      m.trigger('disable'); // FAULTED -> UNAVAILABLE: still held
      should(engine.getPendingCommands(T0)).have.length(0);
      m.trigger('enable');
      const due = engine.getPendingCommands(T0);
      should(due.map((c) => c.valueKw)).eql([5]);
      should(due[0]?.holdReason).be.null();
      should(engine.stats().held).equal(0);
    });

    it('an asset that comes back after its slot ended gets only the current slot’s command', () => {
      const { engine, clock } = setup({}, T0);
      const m = createEvChargerStateMachine({ assetId: 'a', clock });
      engine.registerStateMachine(m);
      m.trigger('disable');
      engine.scheduleToCommands(evSchedule([5, 6, 7]), { assetMap: { ev_001: 'a' } });
      clock.set(T0 + 30 * 60 * S);
      should(engine.getPendingCommands()).have.length(0);
      clock.set(T0 + H + 60 * S);
      should(engine.getPendingCommands()).have.length(0);
      m.trigger('enable');
      should(engine.getPendingCommands().map((c) => c.valueKw)).eql([6]);
      should(engine.getCommands({ status: CommandStatus.CANCELLED }).map((c) => c.valueKw)).eql([
        5,
      ]);
    });

    it('dispatchCommand also holds a command of a held asset', async () => {
      const { engine, registry, adapter } = setup();
      registry.register('b', adapter);
      const m = createBatteryStateMachine({ assetId: 'b' });
      engine.registerStateMachine(m);
      m.trigger('fault');
      const [cmd] = engine.submit({
        assetId: 'b',
        type: CommandType.SET_DISCHARGE_RATE,
        valueKw: 3,
      });
      should(await engine.dispatchCommand(cmd as Command)).equal(CommandStatus.PENDING);
      should(adapter.sent).have.length(0);
      should(engine.unregisterStateMachine('b')).be.true();
      should(engine.getPendingCommands().map((c) => c.id)).eql([cmd?.id]);
    });

    it('never holds the command that makes an asset available again', () => {
      const { engine } = setup();
      const m = createEvChargerStateMachine({ assetId: 'a' });
      engine.registerStateMachine(m);
      m.trigger('disable');
      engine.submit([
        { id: 'rate', assetId: 'a', type: CommandType.SET_CHARGE_RATE, valueKw: 3 },
        { id: 'enable', assetId: 'a', type: CommandType.CHANGE_AVAILABILITY, valueKw: 1 },
      ]);
      should(engine.getPendingCommands().map((c) => c.id)).eql(['enable']);
      should(engine.getHeldCommands('a').map((c) => c.id)).eql(['rate']);
    });

    it('reports a stale state', () => {
      const { engine, clock } = setup();
      const m = createBatteryStateMachine({ assetId: 'b', clock });
      engine.registerStateMachine(m);
      should(engine.isStateStale('b')).be.false();
      clock.advance(61 * S);
      should(engine.isStateStale('b')).be.true();
      m.forceState('IDLE');
      should(engine.isStateStale('b')).be.false();
      should(engine.isStateStale('unknown')).be.false();
    });
  });

  describe('submit', () => {
    it('takes a command written by hand with defaults', () => {
      const { engine } = setup();
      const [c] = engine.submit({
        assetId: 'a',
        type: 'SET_POWER_LIMIT',
        valueKw: 11,
        priority: 10,
      });
      should(c).have.properties({
        assetId: 'a',
        type: 'SET_POWER_LIMIT',
        valueKw: 11,
        priority: 10,
        status: 'PENDING',
        scheduleId: null,
        validUntil: null,
      });
      should(c?.scheduledAt.getTime()).equal(T0);
      should(c?.id).match(/^cmd-/);
    });

    it('commands submitted together share equal times and columns, and keep their own histories', () => {
      const { engine, registry, adapter } = setup();
      registry.register('a', adapter);
      registry.register('b', adapter);
      const json = (assetId: string) => ({
        assetId,
        type: 'SET_CHARGE_RATE' as const,
        valueKw: 3,
        scheduledAt: new Date(T0).toISOString(),
        validUntil: new Date(T0 + H).toISOString(),
        scheduleId: 'sch-x',
        source: { columns: ['ev_x_kw'], slot: 0 },
      });
      const [a, b] = engine.submit([json('a'), json('b')]) as [Command, Command];
      should(a.scheduledAt).equal(b.scheduledAt); // the same Date object
      should(a.validUntil).equal(b.validUntil);
      should(a.createdAt).equal(b.createdAt);
      should(a.source?.columns).equal(b.source?.columns);
      should(Object.isFrozen(a.source?.columns)).be.true();
      engine.markDispatched(a);
      should(a.history.map((h) => h.status)).eql([CommandStatus.PENDING, CommandStatus.DISPATCHED]);
      should(b.history.map((h) => h.status)).eql([CommandStatus.PENDING]);
      should(b.scheduledAt.getTime()).equal(T0);
      // What goes out is a copy: a flow changing it changes no command.
      const out = commandToJSON(b);
      out.source?.columns.push('changed');
      should(b.source?.columns).eql(['ev_x_kw']);
    });

    it('validates every element before registering any, naming the index and field', () => {
      const { engine } = setup();
      const good = { assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1 };
      const cases: [unknown, RegExp][] = [
        [{ ...good, type: 'SET_TURBO' }, /command \[1\]: type must be one of .*got "SET_TURBO"/],
        [{ ...good, assetId: '' }, /command \[1\]: assetId must be a non-empty string/],
        [
          { ...good, valueKw: -3 },
          /command \[1\]: valueKw must be a finite number >= 0 \(kW\) for SET_CHARGE_RATE, got -3/,
        ],
        [{ ...good, valueKw: '7' }, /valueKw must be a finite number/],
        [
          { ...good, scheduledAt: 'tomorrow' },
          /command \[1\]: scheduledAt must be an ISO 8601 time/,
        ],
        [{ ...good, scheduledAt: T0, validUntil: T0 }, /validUntil .* must be after scheduledAt/],
        [{ ...good, priority: 'high' }, /priority must be a number/],
        [42, /command \[1\]: must be an object, got number 42/],
      ];
      for (const [bad, re] of cases) {
        should(() => engine.submit([good as never, bad as never])).throw(re);
        should(engine.stats().total).equal(0);
      }
      should(() =>
        engine.submit([
          { ...good, id: 'x' },
          { ...good, id: 'x' },
        ] as never),
      ).throw(/id x appears twice/);
    });

    it('START_CHARGING needs no value', () => {
      const { engine } = setup();
      const [c] = engine.submit({ assetId: 'a', type: CommandType.START_CHARGING });
      should(c?.valueKw).equal(0);
    });

    it('skips a re-delivered command and refuses the same id with other content', () => {
      const { engine, types } = setup();
      const cmds = engine.scheduleToCommands(seedSchedule, {
        assetMap: { ev_001: 'a' },
        scheduleId: 's',
      });
      const json = JSON.parse(JSON.stringify(cmds));
      should(engine.submit(json)).have.length(0);
      should(types().filter((t) => t === 'COMMAND_CREATED')).have.length(2);
      json[0].valueKw = 21;
      should(() => engine.submit(json)).throw(/id s:a:0 is already registered with other content/);
    });
  });

  describe('in force, active, and attempts run by a host', () => {
    it('finds the setpoint in force and the unfinished commands of an asset', async () => {
      const { engine, registry, adapter, clock } = setup();
      registry.register('a', adapter);
      const cmds = engine.scheduleToCommands(evSchedule([5, 6, 7]), { assetMap: { ev_001: 'a' } });
      should(engine.getCommandInForce('a')).be.undefined();
      await engine.tick(T0);
      should(engine.getCommandInForce('a')?.valueKw).equal(5);
      should(engine.getActiveCommands('a').map((c) => c.valueKw)).eql([6, 7]);
      clock.set(T0 + H);
      should(engine.getCommandInForce('a')).be.undefined(); // its slot ended, 6 not sent yet
      await engine.tick();
      should(engine.getCommandInForce('a')?.id).equal(cmds[1]?.id);
      should(engine.getActiveCommands('nobody')).eql([]);
    });

    it('runAttempt applies the answer to a command the host marked dispatched', async () => {
      const { engine, adapter } = setup();
      const [a, b] = engine.submit([
        { assetId: 'x', type: 'SET_CHARGE_RATE', valueKw: 1 },
        { assetId: 'x', type: 'SET_CHARGE_RATE', valueKw: 2 },
      ]);
      engine.markDispatched(a as Command);
      should(await engine.runAttempt(a as Command, adapter)).eql({ success: true });
      should(a?.status).equal(CommandStatus.COMPLETED);
      engine.markDispatched(b as Command);
      adapter.answer = () => {
        throw new AdapterError('NotSupported', { final: true });
      };
      should(await engine.runAttempt((b as Command).id, adapter)).eql({
        success: false,
        error: 'NotSupported',
        final: true,
      });
      should(b?.status).equal(CommandStatus.FAILED);
    });
  });

  describe('cancellation', () => {
    it('cancels the pending commands of one asset, or of all', async () => {
      const { engine, registry, adapter } = setup();
      registry.register('a', adapter);
      adapter.answer = () => undefined;
      const cmds = engine.submit([
        { assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 1 },
        { assetId: 'a', type: 'SET_CHARGE_RATE', valueKw: 2, scheduledAt: T0 + H },
        { assetId: 'b', type: 'SET_CHARGE_RATE', valueKw: 3 },
      ]);
      await engine.dispatchCommand(cmds[0] as Command);
      should(engine.cancelPending({ assetId: 'a' }).map((c) => c.valueKw)).eql([2]);
      should(cmds[0]?.status).equal(CommandStatus.DISPATCHED);
      should(engine.cancelPending({ assetId: 'nobody' })).have.length(0);
      should(
        engine
          .cancelPending({ includeInFlight: true }, 'reset')
          .map((c) => c.valueKw)
          .sort(),
      ).eql([1, 3]);
      should(cmds[2]?.lastError).equal('reset');
      should(engine.cancel(cmds[2] as Command)).be.false();
      should(engine.stats()).have.properties({ pending: 0, inFlight: 0, finished: 3 });
    });
  });

  describe('bookkeeping', () => {
    it('keeps at most maxFinishedCommands finished commands', async () => {
      const { engine, registry, adapter } = setup({ maxFinishedCommands: 2 });
      registry.register('a', adapter);
      const cmds = engine.submit(
        [1, 2, 3, 4].map((v) => ({ assetId: 'a', type: 'SET_CHARGE_RATE' as const, valueKw: v })),
      );
      for (const c of cmds) await engine.dispatchCommand(c);
      should(engine.getCommands().map((c) => c.valueKw)).eql([3, 4]);
      should(engine.stats()).have.properties({ total: 2, finished: 2 });
    });

    it('tick times out late attempts and dispatches what is due', async () => {
      const { engine, registry, adapter } = setup();
      registry.register('ast_ev_001', adapter);
      engine.scheduleToCommands(seedSchedule, { assetMap: { ev_001: 'ast_ev_001' } });
      await engine.tick(T0);
      await engine.tick(T0 + 3 * H);
      should(adapter.sent.map((s) => s.valueKw)).eql([22, 0]);
      should(engine.stats().byStatus.COMPLETED).equal(2);
      should(engine.nextWakeAt()).be.null();
    });
  });
});
