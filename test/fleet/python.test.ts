/**
 * The Python optimiser of clients/python/optimiser.py (paho-mqtt) against a real broker and a
 * core-library FleetGateway in this process: its schedule is acknowledged `accepted` and
 * dispatched to the site's assets, a bad one `rejected` with the row and column named, and the
 * script's exit code says which. Needs python3 with paho-mqtt (Debian's python3-paho-mqtt):
 * it runs in .ci/run's pass 3 (.ci/mocharc.mqtt.cjs), not in `npm test` (.mocharc.json
 * ignores it).
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import should from 'should';
import type { Command } from '../../src/commands';
import { FleetGateway } from '../../src/fleet/gateway';
import { Site } from '../../src/site';
import { startBroker, type TestBroker } from '../helpers/mqtt-broker';

const SCRIPT = path.join(__dirname, '../../clients/python/optimiser.py');
/** Debian's python3 is the one apt installed paho-mqtt for (a pyenv python3 first on PATH is not). */
const PYTHON =
  process.env.QE_PYTHON ?? (fs.existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(PYTHON, [SCRIPT, ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

describe('fleet: the Python optimiser (paho-mqtt) against a gateway', function () {
  this.timeout(60_000);
  let broker: TestBroker;
  let site: Site;
  let gateway: FleetGateway;
  const sent: Command[] = [];

  before(async () => {
    broker = await startBroker();
    site = new Site({ siteId: 'py-depot', autoDispatch: true, onError: () => {} });
    for (const assetId of ['ev-1', 'ev-2', 'bess'])
      site.adapterRegistry.register(assetId, {
        protocol: 'test',
        dispatch: (c) => {
          sent.push(c);
          return { success: true };
        },
      });
    site.start();
    gateway = new FleetGateway(site, {
      url: broker.url,
      schedule: { assetMap: { v01: 'ev-1', v02: 'ev-2', battery: 'bess' } },
    });
    await gateway.start();
  });

  after(async () => {
    await gateway?.stop();
    await site?.stop();
    await broker?.stop();
  });

  it('publishes a split-JSON schedule, prints the ack `accepted`, exits 0; the site dispatches it', async () => {
    const r = await run([
      '--host',
      '127.0.0.1',
      '--port',
      String(broker.port),
      '--site',
      'py-depot',
    ]);
    should(r.code).equal(0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const ack = JSON.parse(r.stdout);
    should(ack.status).equal('accepted');
    should(ack.requestId).match(/^py-[0-9a-f]{12}$/);
    should(Number.isNaN(Date.parse(ack.at))).be.false();
    // The first slot (this minute) is in force: 7 kW and 6 kW for the chargers, 5 kW charge.
    const until = Date.now() + 10_000;
    const first = () =>
      Object.fromEntries(
        ['ev-1', 'ev-2', 'bess'].map((a) => [a, sent.find((c) => c.assetId === a)?.valueKw]),
      );
    while (Object.values(first()).some((v) => v === undefined) && Date.now() < until)
      await new Promise((res) => setTimeout(res, 20));
    should(first()).eql({ 'ev-1': 7, 'ev-2': 6, bess: 5 });
    should(sent.every((c) => c.scheduleId === ack.requestId)).be.true();
  });

  it('a schedule with a negative power: the ack `rejected` names row and column, exit 1, nothing dispatched', async () => {
    const before = sent.length;
    const r = await run([
      '--host',
      '127.0.0.1',
      '--port',
      String(broker.port),
      '--site',
      'py-depot',
      '--bad',
      '--schedule-id',
      'py-bad-1',
    ]);
    should(r.code).equal(1, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    const ack = JSON.parse(r.stdout);
    should(ack.status).equal('rejected');
    should(ack.requestId).equal('py-bad-1');
    should(ack.error.message).match(/row 0 .*ev_v01_kw.*-5 kW is negative/);
    await new Promise((res) => setTimeout(res, 300));
    should(sent.length).equal(before);
  });

  it('no gateway on that site: exits 2 after its --timeout, saying no ack came', async () => {
    const r = await run(['--port', String(broker.port), '--site', 'nobody-here', '--timeout', '1']);
    should(r.code).equal(2);
    should(r.stderr).match(/no ack for py-[0-9a-f]{12} on qe\/v1\/nobody-here\/schedule\/ack/);
  });
});
