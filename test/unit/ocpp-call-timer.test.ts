import { RPCClient, TimeoutError } from 'ocpp-rpc';
import should from 'should';
import { CallTimer } from '../../src/adapters/ocpp/call-timer';
import { boot, charger, closePeers, on, startCentral, until } from '../helpers/ocpp-peers';

// The central system's own call timeout (call-timer.ts) in place of ocpp-rpc's: the same
// TimeoutError after the same time, the call forgotten, the next call to the charger served.

afterEach(closePeers);

describe('OCPP call timeout (call-timer.ts, loopback, real ocpp-rpc charger)', () => {
  it('the installed ocpp-rpc lets the central system time its calls (else it falls back)', () => {
    const client = new RPCClient({ endpoint: 'ws://127.0.0.1:9/ocpp', identity: 'X' } as never);
    should(CallTimer.for(client)).not.be.null();
    should(CallTimer.for({})).be.null();
    should(CallTimer.handles(500)).be.true();
    for (const ms of [0, -1, Number.POSITIVE_INFINITY, 2 ** 31])
      should(CallTimer.handles(ms)).be.false();
  });

  it("an unanswered call rejects with ocpp-rpc's TimeoutError; a late answer is ignored; the next call is answered", async () => {
    const { central, port } = await startCentral({ callTimeoutMs: 150 });
    const cp = charger(port, 'CP1', 'ocpp1.6');
    const answers: (() => void)[] = [];
    let calls = 0;
    on(cp, 'TriggerMessage', () => {
      calls++;
      if (calls > 1) return { status: 'Accepted' };
      return new Promise((resolve) => answers.push(() => resolve({ status: 'Accepted' })));
    });
    await boot(cp, 'ocpp1.6');
    const params = { requestedMessage: 'StatusNotification', connectorId: 1 };
    const err = await central.call('CP1', 'TriggerMessage', params).then(
      () => null,
      (e: Error) => e,
    );
    should(err).be.instanceOf(TimeoutError);
    should((err as Error).message).equal('Call timeout');
    answers[0]?.(); // the late answer: nothing waits for it any more
    should(await central.call('CP1', 'TriggerMessage', params)).eql({ status: 'Accepted' });
    // A per-call timeout: answered well within it.
    should(await central.call('CP1', 'TriggerMessage', params, { timeoutMs: 10_000 })).eql({
      status: 'Accepted',
    });
    await until(() => calls === 3, 'three calls received');
    should(central.isConnected('CP1')).be.true();
  });

  it('a call that is answered leaves no timer behind to reject the next one', async () => {
    const { central, port } = await startCentral();
    const cp = charger(port, 'CP1', 'ocpp1.6');
    let release: () => void = () => {};
    let calls = 0;
    on(cp, 'TriggerMessage', () => {
      calls++;
      if (calls === 1) return { status: 'Accepted' };
      return new Promise((resolve) => {
        release = () => resolve({ status: 'Accepted' });
      });
    });
    await boot(cp, 'ocpp1.6');
    const params = { requestedMessage: 'StatusNotification', connectorId: 1 };
    // The first: answered at once, within its 30 ms.
    should(await central.call('CP1', 'TriggerMessage', params, { timeoutMs: 30 })).eql({
      status: 'Accepted',
    });
    // The second waits far past the first's 30 ms for its answer; its own timeout is 10 s.
    const second = central.call('CP1', 'TriggerMessage', params, { timeoutMs: 10_000 });
    await until(() => calls === 2, 'the second call received');
    await new Promise((r) => setTimeout(r, 100));
    release();
    should(await second).eql({ status: 'Accepted' });
  });
});
