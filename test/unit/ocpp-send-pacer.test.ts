import should from 'should';
import { CallExpiredError } from '../../src/adapters/ocpp/central-system';
import { resolveOptions } from '../../src/adapters/ocpp/central-system-options';
import { DEFAULT_SEND_SLICE_MS, SendPacer } from '../../src/adapters/ocpp/send-pacer';
import { ManualClock } from '../../src/clock';
import { CommandStatus } from '../../src/commands';
import {
  boot,
  charger,
  closePeers,
  limitOf,
  on,
  siteWith,
  startCentral,
  until,
} from '../helpers/ocpp-peers';

// The central system's calls in slices of a turn (send-pacer.ts): first the pacer alone, on a
// fake time and turns run by hand; then through a real central system and real ocpp-rpc
// chargers on loopback, with a slice of 0 (one call a turn), which needs no wall clock.

/** A pacer on fake time whose turns run when the test says so. */
function rig(budgetMs: number) {
  let t = 0;
  const turns: (() => void)[] = [];
  const pacer = new SendPacer(
    budgetMs,
    () => t,
    (fn) => turns.push(fn),
  );
  const sent: string[] = [];
  /** A send that takes `ms` of fake time and resolves to its name. */
  const send = (name: string, ms: number) => () => {
    sent.push(name);
    t += ms;
    return Promise.resolve(name);
  };
  const turn = () => {
    const fn = turns.shift();
    if (!fn) throw new Error('no turn asked for');
    fn();
  };
  return { pacer, sent, send, turn, turns };
}

/** Lets the promise jobs queued so far run (no turn of the event loop). */
async function microtasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

afterEach(closePeers);

describe('OCPP calls in slices of a turn (send-pacer.ts)', () => {
  it('sends at once while the turn has room, the rest in later turns, in order', async () => {
    const { pacer, sent, send, turn, turns } = rig(5);
    const results = [
      pacer.run(send('a', 2)), // opens the turn at 0
      pacer.run(send('b', 2)), // at 2
      pacer.run(send('c', 2)), // at 4: still under 5
      pacer.run(send('d', 2)), // at 6: waits
      pacer.run(send('e', 0)), // behind d
    ];
    should(sent).eql(['a', 'b', 'c']);
    should(pacer.waiting).equal(2);
    should(turns).have.length(1);
    turn(); // the next turn: its own window, from 6
    should(sent).eql(['a', 'b', 'c', 'd', 'e']);
    should(pacer.waiting).equal(0);
    should(await Promise.all(results)).eql(['a', 'b', 'c', 'd', 'e']);
  });

  it('a call waits behind those that wait even when the turn has room', () => {
    const { pacer, sent, send, turn } = rig(5);
    pacer.run(send('a', 6)); // the whole turn
    pacer.run(send('b', 0)); // waits
    turn(); // b goes (t 6, a new window)
    pacer.run(send('c', 6)); // same window, room left: goes
    pacer.run(send('d', 0)); // 6 ms into the window: waits
    should(sent).eql(['a', 'b', 'c']);
    turn();
    should(sent).eql(['a', 'b', 'c', 'd']);
  });

  it('a slice of 0 sends one call a turn; Infinity sends every call at once and asks for no turn', () => {
    const one = rig(0);
    for (const name of ['a', 'b', 'c']) one.pacer.run(one.send(name, 0));
    should(one.sent).eql(['a']);
    one.turn();
    should(one.sent).eql(['a', 'b']);
    one.turn();
    should(one.sent).eql(['a', 'b', 'c']);
    const all = rig(Number.POSITIVE_INFINITY);
    for (const name of ['a', 'b', 'c']) all.pacer.run(all.send(name, 100));
    should(all.sent).eql(['a', 'b', 'c']);
    should(all.turns).have.length(0);
  });

  it('a send that throws in a later turn rejects its own call; the others still go', async () => {
    const { pacer, sent, send, turn } = rig(0);
    const a = pacer.run(send('a', 0));
    const b = pacer.run(() => {
      throw new Error('not valid');
    });
    const c = pacer.run(send('c', 0));
    turn();
    await should(b).be.rejectedWith('not valid');
    turn();
    should(await Promise.all([a, c])).eql(['a', 'c']);
    should(sent).eql(['a', 'c']);
  });

  it('sendSliceMs: default, Infinity, and a clear error for a bad value', () => {
    should(resolveOptions({}).sendSliceMs).equal(DEFAULT_SEND_SLICE_MS);
    should(resolveOptions({ sendSliceMs: 0 }).sendSliceMs).equal(0);
    should(resolveOptions({ sendSliceMs: Number.POSITIVE_INFINITY }).sendSliceMs).equal(
      Number.POSITIVE_INFINITY,
    );
    for (const bad of [-1, Number.NaN, '5', null])
      should(() => resolveOptions({ sendSliceMs: bad as never })).throw(TypeError, {
        message: /sendSliceMs must be a number of milliseconds, 0 or more/,
      });
  });

  it('a real central system with a slice of 0: calls to two chargers leave in two turns, each answered, in order per charger', async () => {
    const { central, port } = await startCentral({ sendSliceMs: 0 });
    const received: string[] = [];
    for (const id of ['CP1', 'CP2']) {
      const cp = charger(port, id, 'ocpp1.6');
      on(cp, 'TriggerMessage', ({ params }) => {
        received.push(`${id}:${(params as { connectorId: number }).connectorId}`);
        return { status: 'Accepted' };
      });
      await boot(cp, 'ocpp1.6');
    }
    await nextTurn(); // the boots' calls are out of the way
    const trigger = (id: string, connectorId: number) =>
      central.call(id, 'TriggerMessage', { requestedMessage: 'StatusNotification', connectorId });
    const answers = [trigger('CP1', 1), trigger('CP2', 1), trigger('CP1', 2)];
    await microtasks();
    // CP1's first call went; CP2's waits for the next turn; CP1's second waits for CP1's answer.
    should(central.waitingCalls).equal(1);
    await nextTurn();
    should(central.waitingCalls).equal(0);
    should(await Promise.all(answers)).eql([
      { status: 'Accepted' },
      { status: 'Accepted' },
      { status: 'Accepted' },
    ]);
    should(received.filter((r) => r.startsWith('CP1'))).eql(['CP1:1', 'CP1:2']);
    should(received).containEql('CP2:1');
  });

  it('a call whose notAfter passes while it waits for its turn is not sent (CallExpiredError)', async () => {
    const clock = new ManualClock(Date.parse('2026-01-01T00:00:00Z'));
    const { central, port } = await startCentral({ sendSliceMs: 0, clock });
    const received: string[] = [];
    for (const id of ['CP1', 'CP2']) {
      const cp = charger(port, id, 'ocpp1.6');
      on(cp, 'TriggerMessage', () => {
        received.push(id);
        return { status: 'Accepted' };
      });
      await boot(cp, 'ocpp1.6');
    }
    await nextTurn();
    const params = { requestedMessage: 'StatusNotification', connectorId: 1 };
    const first = central.call('CP1', 'TriggerMessage', params);
    const late = central.call('CP2', 'TriggerMessage', params, { notAfter: clock.now() + 1000 });
    await microtasks();
    should(central.waitingCalls).equal(1);
    clock.advance(1000); // its slot ends before its turn
    await should(late).be.rejectedWith(CallExpiredError);
    should(await first).eql({ status: 'Accepted' });
    should(received).eql(['CP1']);
    // The charger is served as before.
    should(await central.call('CP2', 'TriggerMessage', params)).eql({ status: 'Accepted' });
    should(received).eql(['CP1', 'CP2']);
  });

  it('callsInFlight counts the calls sent until each is answered, times out or loses its charger; a waiting call is not in flight', async () => {
    const { central, port } = await startCentral({ sendSliceMs: 0 });
    const release: (() => void)[] = [];
    let answer = true;
    const cps = [];
    for (const id of ['CP1', 'CP2']) {
      const cp = charger(port, id, 'ocpp1.6');
      // Answers when the test says so; with `answer` false, never (the call times out).
      on(cp, 'TriggerMessage', () =>
        answer
          ? new Promise((resolve) => release.push(() => resolve({ status: 'Accepted' })))
          : new Promise(() => {}),
      );
      await boot(cp, 'ocpp1.6');
      cps.push(cp);
    }
    await nextTurn();
    should(central.callsInFlight).equal(0);
    const params = { requestedMessage: 'StatusNotification', connectorId: 1 };
    const a = central.call('CP1', 'TriggerMessage', params);
    const b = central.call('CP2', 'TriggerMessage', params);
    await microtasks();
    // One call a turn: CP1's left, CP2's waits for the next turn.
    should(central.callsInFlight).equal(1);
    should(central.waitingCalls).equal(1);
    await nextTurn();
    should(central.callsInFlight).equal(2);
    await until(() => release.length === 2, 'both calls received');
    (release[0] as () => void)();
    should(await a).eql({ status: 'Accepted' });
    should(central.callsInFlight).equal(1);
    (release[1] as () => void)();
    await b;
    should(central.callsInFlight).equal(0);
    answer = false;
    const timedOut = central.call('CP2', 'TriggerMessage', params, { timeoutMs: 50 });
    await should(timedOut).be.rejected();
    should(central.callsInFlight).equal(0);
    // A charger that goes while its call has no answer: the call fails, not in flight.
    const lost = central.call('CP1', 'TriggerMessage', params);
    await until(() => central.callsInFlight === 1, 'the call sent');
    await (cps[0] as (typeof cps)[number]).close({ force: true });
    await should(lost).be.rejected();
    should(central.callsInFlight).equal(0);
  });

  it('a site dispatching through the adapter with a slice of 0: every setpoint leaves, one call a turn, and completes', async () => {
    const ids = ['CP1', 'CP2', 'CP3', 'CP4'];
    const { central, port } = await startCentral({
      sendSliceMs: 0,
      chargers: ids.map((identity) => ({ identity })),
    });
    const { site } = siteWith(
      central,
      ids.map((identity, i) => ({ identity, assetId: `ev${i}`, ratedKw: 22, confirm: 'accepted' })),
    );
    const limits = new Map<string, string[]>();
    const triggered = new Set<string>();
    for (const id of ids) {
      const cp = charger(port, id, 'ocpp1.6');
      limits.set(id, []);
      on(cp, 'SetChargingProfile', ({ params }) => {
        limits.get(id)?.push(limitOf(params));
        return { status: 'Accepted' };
      });
      on(cp, 'TriggerMessage', () => {
        triggered.add(id);
        return { status: 'Accepted' };
      });
      await boot(cp, 'ocpp1.6');
    }
    // The re-apply after each boot (its TriggerMessage) is over: only the setpoints below go.
    await until(
      () =>
        triggered.size === ids.length &&
        ids.every((_, i) => site.getStateMachine(`ev${i}`)?.currentState === 'AVAILABLE'),
      'every charger re-applied and AVAILABLE',
    );
    const commands = site.submit(
      ids.map((_, i) => ({ assetId: `ev${i}`, type: 'SET_CHARGE_RATE', valueKw: 3 + i })),
    );
    await until(
      () => commands.every((c) => c.status === CommandStatus.COMPLETED),
      'every setpoint COMPLETED',
    );
    for (const [i, id] of ids.entries()) should(limits.get(id)).eql([String((3 + i) * 1000)]);
    should(central.waitingCalls).equal(0);
  });
});
