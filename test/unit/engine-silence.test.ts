// Optimiser silence (engine config `silenceSeconds`): when no schedule has been received for
// that long, the assets of the last schedule get their fallback setpoints, once per silence,
// superseding the stale plan. Timing with a manual clock and the engine's nextWakeAt / tick,
// and through a Site's injectable timers; never by sleeping.

import should from 'should';
import { type Adapter, AdapterRegistry } from '../../src/adapters/registry';
import { ManualClock } from '../../src/clock';
import { type Command, CommandStatus, CommandType } from '../../src/commands';
import { DispatchEngine, type EngineConfig, resolveConfig } from '../../src/engine';
import { type BusEvent, EventBus, EventType } from '../../src/event-bus';
import type { RestoreProblem } from '../../src/restore';
import { type DueCommandSink, Site } from '../../src/site';
import { MemoryStore } from '../../src/store';
import { FakeTimers, flush } from '../helpers/fake-timers';

const T0 = Date.parse('2025-06-02T08:00:00Z');
const S = 1000;
const H = 3600 * S;
const SILENCE = 600;

/** An hourly schedule for EV `v1` (asset a) and the battery (asset bat). */
function schedule(ev: number[], battery: number[], start = T0) {
  return {
    columns: ['ev_v1_kw', 'battery_charge_kw'],
    index: ev.map((_, i) => new Date(start + i * H).toISOString()),
    data: ev.map((v, i) => [v, battery[i] ?? 0]),
  };
}
const assetMap = { v1: 'a', battery: 'bat' };

const CONFIG: Partial<EngineConfig> = {
  silenceSeconds: SILENCE,
  horizonEnd: { fallbackKw: { bat: -2, '*': 3.7 } },
};

/** An engine whose adapter answers every command with success at once. */
function make(clock: ManualClock, config: Partial<EngineConfig> = CONFIG) {
  const adapterRegistry = new AdapterRegistry();
  const sent: Command[] = [];
  const ok: Adapter = {
    protocol: 'test',
    dispatch: (c) => {
      sent.push(c);
      return { success: true };
    },
  };
  adapterRegistry.register('a', ok);
  adapterRegistry.register('bat', ok);
  const eventBus = new EventBus({ clock });
  const silences: BusEvent<EventType.OPTIMISER_SILENT>[] = [];
  eventBus.subscribe(EventType.OPTIMISER_SILENT, (e) => silences.push(e));
  const deps = { clock, adapterRegistry, eventBus, config };
  return { engine: new DispatchEngine(deps), sent, silences, deps };
}

describe('DispatchEngine optimiser silence', () => {
  it('fires once at the silence deadline: fallbacks due now, the stale plan superseded', async () => {
    const clock = new ManualClock(T0);
    const { engine, sent, silences } = make(clock);
    engine.scheduleToCommands(schedule([7, 11, 0], [5, 5, 1]), { assetMap, scheduleId: 'day' });
    await engine.tick();
    should(sent.map((c) => c.id).sort()).eql(['day:a:0', 'day:bat:0']);
    // Next: the silence (T0 + 600 s), before the next slot (T0 + 1 h).
    should(engine.nextWakeAt()).equal(T0 + SILENCE * S);

    clock.set(T0 + SILENCE * S - 1);
    should(await engine.tick()).eql([]);
    should(silences).have.length(0);

    clock.set(T0 + SILENCE * S);
    const due = await engine.tick();
    should(due.map((c) => c.id).sort()).eql(['day~silent:a', 'day~silent:bat']);
    const ev = engine.getCommand('day~silent:a') as Command;
    should(ev).containEql({ type: CommandType.SET_CHARGE_RATE, valueKw: 3.7 });
    should(ev.status).equal(CommandStatus.COMPLETED);
    should(ev.scheduledAt.getTime()).equal(T0 + SILENCE * S);
    should(ev.validUntil).be.null();
    should(ev.history[0]?.reason).match(/^optimiser silent for 600 s: no schedule since day at /);
    const bat = engine.getCommand('day~silent:bat') as Command;
    should(bat).containEql({ type: CommandType.SET_DISCHARGE_RATE, valueKw: 2 });
    should(engine.getCommandInForce('bat')?.id).equal('day~silent:bat');
    // The stale plan's setpoint that had gone out ends at the silence.
    should(engine.getCommand('day:a:0')?.validUntil?.getTime()).equal(T0 + SILENCE * S);

    should(silences).have.length(1);
    should(silences[0]?.payload).eql({
      scheduleId: 'day',
      receivedAt: new Date(T0).toISOString(),
      silentForSeconds: SILENCE,
      assets: ['a', 'bat'],
      commandIds: ['day~silent:a', 'day~silent:bat'],
    });

    // The stale plan's later slots never go out, not even the horizon's end.
    for (const id of ['day:a:1', 'day:a:2', 'day:bat:2']) {
      const c = engine.getCommand(id) as Command;
      should(c.status).equal(CommandStatus.CANCELLED, id);
      should(c.lastError).equal('superseded by schedule day~silent');
    }
    // Once per silence: nothing more, and the silence is no longer a wake time.
    should(engine.nextWakeAt()).be.null();
    for (const t of [T0 + SILENCE * S + 1, T0 + H, T0 + 5 * H]) {
      clock.set(t);
      should(await engine.tick()).eql([]);
    }
    should(silences).have.length(1);
    should(sent).have.length(4);
  });

  it('a schedule received before the silence resets it; the next silence counts from it', async () => {
    const clock = new ManualClock(T0);
    const { engine, silences } = make(clock);
    engine.scheduleToCommands(schedule([7, 11], [5, 5]), { assetMap, scheduleId: 'day' });
    await engine.tick();
    clock.set(T0 + 500 * S);
    engine.scheduleToCommands(schedule([8, 11], [5, 5]), { assetMap, scheduleId: 'day' });
    await engine.tick();
    should(engine.nextWakeAt()).equal(T0 + 1100 * S);
    clock.set(T0 + SILENCE * S);
    await engine.tick();
    should(silences).have.length(0);
    clock.set(T0 + 1100 * S);
    const due = await engine.tick();
    should(due.map((c) => c.id).sort()).eql(['day#2~silent:a', 'day#2~silent:bat']);
    should(silences.map((e) => e.payload.scheduleId)).eql(['day#2']);
    should(silences[0]?.payload.silentForSeconds).equal(SILENCE);
  });

  it('a new schedule after the silence supersedes the fallback and starts a new count', async () => {
    const clock = new ManualClock(T0);
    const { engine, silences } = make(clock);
    engine.scheduleToCommands(schedule([7, 11], [5, 5]), { assetMap, scheduleId: 'day' });
    await engine.tick();
    clock.set(T0 + SILENCE * S);
    await engine.tick();
    should(engine.getCommandInForce('a')?.id).equal('day~silent:a');

    // The optimiser is back, with a plan from the start of the current hour.
    clock.set(T0 + 900 * S);
    engine.scheduleToCommands(schedule([9, 10], [4, 4]), { assetMap, scheduleId: 'next' });
    const fallback = engine.getCommand('day~silent:a') as Command;
    should(fallback.validUntil?.getTime()).equal(T0 + 900 * S);
    const due = await engine.tick();
    should(due.map((c) => c.id).sort()).eql(['next:a:0', 'next:bat:0']);
    should(engine.getCommandInForce('a')?.id).equal('next:a:0');
    // A device that reconnects is given the new schedule's setpoint, not the fallback.
    should(engine.reapply('a', 'reconnected').map((c) => c.reapplyOf)).eql(['next:a:0']);
    await engine.tick();

    should(engine.nextWakeAt()).equal(T0 + 1500 * S);
    clock.set(T0 + 1500 * S);
    await engine.tick();
    should(silences.map((e) => e.payload.scheduleId)).eql(['day', 'next']);
  });

  it('a fallback still pending is cancelled by the next schedule', async () => {
    const clock = new ManualClock(T0);
    const { engine } = make(clock);
    engine.scheduleToCommands(schedule([7, 11], [5, 5]), { assetMap, scheduleId: 'day' });
    clock.set(T0 + SILENCE * S);
    should(engine.checkSilence().map((c) => c.id)).eql(['day~silent:a', 'day~silent:bat']);
    engine.scheduleToCommands(schedule([9, 10], [4, 4]), { assetMap, scheduleId: 'next' });
    should(engine.getCommand('day~silent:a')?.status).equal(CommandStatus.CANCELLED);
    should(engine.getCommand('day~silent:a')?.lastError).equal('superseded by schedule next');
  });

  it('only assets with a fallback get one; an EV is never sent a negative one', async () => {
    const clock = new ManualClock(T0);
    const { engine, silences } = make(clock, {
      silenceSeconds: SILENCE,
      horizonEnd: { fallbackKw: { bat: 0 } },
    });
    engine.scheduleToCommands(schedule([7, 11], [5, 5]), { assetMap, scheduleId: 'day' });
    await engine.tick();
    clock.set(T0 + SILENCE * S);
    should((await engine.tick()).map((c) => c.id)).eql(['day~silent:bat']);
    should(silences[0]?.payload.commandIds).eql(['day~silent:bat']);
    // The EV keeps its plan: nothing supersedes it.
    should(engine.getCommand('day:a:1')?.status).equal(CommandStatus.PENDING);
  });

  it('without silenceSeconds nothing happens, however long the optimiser is silent', async () => {
    const clock = new ManualClock(T0);
    const { engine, silences } = make(clock, { horizonEnd: { fallbackKw: { '*': 0 } } });
    engine.scheduleToCommands(schedule([7], [5]), {
      assetMap,
      scheduleId: 'day',
      slotSeconds: 24 * 3600,
    });
    await engine.tick();
    should(engine.nextWakeAt()).equal(T0 + 24 * H); // the horizon-end fallback only
    clock.set(T0 + 23 * H);
    should(await engine.tick()).eql([]);
    should(silences).have.length(0);
  });

  describe('persistence', () => {
    it('a restart counts the silence from the schedule received before it', async () => {
      const clock = new ManualClock(T0);
      const { engine } = make(clock);
      engine.scheduleToCommands(schedule([7, 11], [5, 5]), { assetMap, scheduleId: 'day' });
      await engine.tick();
      clock.set(T0 + 300 * S);
      const saved = JSON.parse(JSON.stringify(engine.toJSON()));
      should(saved.lastSchedule).eql({
        scheduleId: 'day',
        receivedAt: new Date(T0).toISOString(),
        assets: [
          { assetId: 'a', kind: 'ev' },
          { assetId: 'bat', kind: 'battery' },
        ],
        silentAt: null,
      });

      clock.set(T0 + 400 * S);
      const again = make(clock);
      const restored = DispatchEngine.restore(saved, again.deps);
      should(restored.nextWakeAt()).equal(T0 + SILENCE * S);
      clock.set(T0 + SILENCE * S);
      should((await restored.tick()).map((c) => c.id).sort()).eql([
        'day~silent:a',
        'day~silent:bat',
      ]);
      should(again.silences).have.length(1);

      // Restarted again after the silence was answered: not answered twice.
      clock.set(T0 + 700 * S);
      const third = make(clock);
      const after = DispatchEngine.restore(
        JSON.parse(JSON.stringify(restored.toJSON())),
        third.deps,
      );
      should(after.nextWakeAt()).be.null();
      clock.set(T0 + 2 * H);
      await after.tick();
      should(third.silences).have.length(0);
      should(third.sent).have.length(0);
    });

    it('a silence that began while the host was down is answered at once', async () => {
      const clock = new ManualClock(T0);
      const { engine } = make(clock);
      engine.scheduleToCommands(schedule([7, 11], [5, 5]), { assetMap, scheduleId: 'day' });
      await engine.tick();
      const saved = JSON.parse(JSON.stringify(engine.toJSON()));
      clock.set(T0 + 2000 * S);
      const again = make(clock);
      const restored = DispatchEngine.restore(saved, again.deps);
      should(restored.nextWakeAt()).equal(T0 + SILENCE * S);
      await restored.tick();
      should(again.silences[0]?.payload.silentForSeconds).equal(2000);
      should(restored.getCommand('day~silent:a')?.history[0]?.reason).match(
        /^optimiser silent for 2000 s/,
      );
    });

    it('an old state without lastSchedule loads; a bad one is reported and left out', async () => {
      const clock = new ManualClock(T0);
      const { engine } = make(clock);
      engine.scheduleToCommands(schedule([7, 11], [5, 5]), { assetMap, scheduleId: 'day' });
      const saved = JSON.parse(JSON.stringify(engine.toJSON()));
      delete saved.lastSchedule;
      const problems: RestoreProblem[] = [];
      const old = DispatchEngine.restore(saved, make(clock).deps, (p) => problems.push(p));
      should(problems).eql([]);
      should(old.getCommand('day:a:1')?.status).equal(CommandStatus.PENDING);
      should(old.toJSON().lastSchedule).be.null();

      saved.lastSchedule = { scheduleId: 'day', receivedAt: 'yesterday', assets: [] };
      const bad = DispatchEngine.restore(saved, make(clock).deps, (p) => problems.push(p));
      should(problems).eql([
        {
          entry: 'lastSchedule["receivedAt"]',
          reason: 'must be an ISO 8601 time, got "yesterday"',
        },
      ]);
      should(bad.getCommand('day:a:1')?.status).equal(CommandStatus.PENDING);
      should(bad.toJSON().lastSchedule).be.null();
    });
  });

  it('config: silenceSeconds is validated and needs a fallback', () => {
    const fb = { horizonEnd: { fallbackKw: { '*': 0 } } };
    should(resolveConfig().silenceSeconds).be.null();
    should(resolveConfig({ ...fb, silenceSeconds: 900 }).silenceSeconds).equal(900);
    should(resolveConfig({ ...fb, silenceSeconds: 365 * 86_400 }).silenceSeconds).equal(
      365 * 86_400,
    );
    for (const bad of [0, -5, Number.NaN, Number.POSITIVE_INFINITY, 365 * 86_400 + 1, '60']) {
      should(() => resolveConfig({ ...fb, silenceSeconds: bad as number })).throw(
        /engine config: silenceSeconds must be null \(off\) or a number > 0 and <= 31536000/,
      );
    }
    should(() => resolveConfig({ silenceSeconds: 60 })).throw(
      /silenceSeconds \(60\) sends the fallback setpoints of horizonEnd: set horizonEnd to \{fallbackKw/,
    );
    should(() => new DispatchEngine({ config: { silenceSeconds: -1 } })).throw(/silenceSeconds/);
  });
});

describe('Site and the optimiser silence', () => {
  function makeSite(clock: ManualClock, timers: FakeTimers, store: MemoryStore) {
    const site = new Site({
      siteId: 'depot',
      clock,
      timers,
      store,
      // A long loop interval: the timer is set by the silence, not by polling.
      config: { ...CONFIG, dispatchIntervalSeconds: 4 * 3600 },
    });
    const delivered: Command[] = [];
    const sink: DueCommandSink = {
      deliver: (c) => {
        delivered.push(c);
        site.respond(c.id, true);
      },
      undeliverable: () => {},
    };
    const ok: Adapter = { protocol: 'test', dispatch: () => undefined };
    site.adapterRegistry.register('a', ok);
    site.adapterRegistry.register('bat', ok);
    site.attachDispatcher('disp', sink);
    site.start();
    return { site, delivered };
  }

  it("Site's timer fires at the silence deadline and delivers the fallbacks once", async () => {
    const clock = new ManualClock(T0);
    const timers = new FakeTimers(clock);
    const store = new MemoryStore();
    const { site, delivered } = makeSite(clock, timers, store);
    // As qe-schedule and qe-dispatcher do: receive, then submit the commands.
    const conv = site.engine.receiveSchedule(schedule([7, 11, 0], [5, 5, 1]), {
      assetMap,
      scheduleId: 'day',
    });
    site.submit(conv.commands, 'disp');
    await flush();
    should(delivered.map((c) => c.id).sort()).eql(['day:a:0', 'day:bat:0']);
    should(site.nextRunAt).equal(T0 + SILENCE * S);

    await timers.advanceTo(T0 + SILENCE * S - 1);
    should(delivered).have.length(2);
    await timers.advanceTo(T0 + SILENCE * S);
    should(
      delivered
        .slice(2)
        .map((c) => c.id)
        .sort(),
    ).eql(['day~silent:a', 'day~silent:bat']);
    should(site.nextRunAt).equal(T0 + SILENCE * S + 4 * H);
    await timers.advanceTo(T0 + 4 * H);
    should(delivered).have.length(4);
    await site.stop();
  });

  it('a Site restarted from its store counts the silence from the saved schedule time', async () => {
    const clock = new ManualClock(T0);
    const store = new MemoryStore();
    const first = makeSite(clock, new FakeTimers(clock), store);
    const conv = first.site.engine.receiveSchedule(schedule([7, 11], [5, 5]), {
      assetMap,
      scheduleId: 'day',
    });
    first.site.submit(conv.commands, 'disp');
    await flush();
    clock.set(T0 + 200 * S);
    await first.site.stop();

    clock.set(T0 + 400 * S);
    const timers = new FakeTimers(clock);
    const second = makeSite(clock, timers, store);
    should(second.site.loadError).be.null();
    should(second.site.nextRunAt).equal(T0 + SILENCE * S);
    await timers.advanceTo(T0 + SILENCE * S);
    should(second.delivered.map((c) => c.id).sort()).eql(['day~silent:a', 'day~silent:bat']);
    await second.site.stop();
  });
});
