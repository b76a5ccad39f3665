import { spawn } from 'node:child_process';
import path from 'node:path';
import should from 'should';
import { CentralSystem, type ChargerEvent } from '../../src/adapters/ocpp/central-system';
import { identities } from '../../src/sim/charge-point-cli';
import { numberOption } from '../../src/sim/cli';
import { CliProcess } from '../helpers/cli-process';
import { setProfile, TestCentral, until } from '../helpers/ocpp-test-central';

const root = path.join(__dirname, '../..');

describe('qe-sim-charger (the command line)', () => {
  it('numbers the identities of several chargers', () => {
    should(identities('CP001', 3)).eql(['CP001', 'CP002', 'CP003']);
    should(identities('CP9', 2)).eql(['CP9', 'CP10']);
  });

  it('reads number options, refusing empty, negative and non-numbers with the option name', () => {
    should(numberOption('count', undefined, 1)).equal(1);
    should(numberOption('count', '3', 1)).equal(3);
    should(numberOption('soc', '0', 50)).equal(0);
    for (const bad of ['', ' ', '-1', 'ten', 'Infinity']) {
      should(() => numberOption('ev-max-kw', bad, 11)).throw(
        `--ev-max-kw must be a number >= 0, got ${JSON.stringify(bad)}`,
      );
    }
  });

  it('runs chargers of both versions against a central system and stops cleanly on SIGTERM', async function () {
    this.timeout(30_000); // a child process under tsx: seconds to start on a busy machine
    const central = new CentralSystem({
      port: 0,
      chargers: ['CP001', 'CP002', 'EV7'].map((identity) => ({ identity })),
    });
    const port = await central.listen();
    const booted = new Set<string>();
    const charging = new Set<string>();
    central.on('charger', (e: ChargerEvent) => {
      if (e.type === 'boot') booted.add(e.identity);
      if (e.type === 'transaction-started') charging.add(e.identity);
    });
    const run = (args: string[]) =>
      spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/sim/charge-point-cli.ts',
          '--url',
          `ws://127.0.0.1:${port}/ocpp`,
          '--meter-interval',
          '0',
          ...args,
        ],
        { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
      );
    const a = run(['--id', 'CP001', '--count', '2', '--protocol', 'ocpp1.6', '--start']);
    const b = run(['--id', 'EV7', '--protocol', 'ocpp2.0.1', '--plug-in']);
    let out = '';
    a.stdout.on('data', (d) => {
      out += d;
    });
    try {
      const ready = () =>
        booted.size === 3 && charging.has('CP001') && charging.has('CP002') && charging.has('EV7');
      // Up to ~20 s: two tsx children take 4-5 s just to start on a loaded 2-core machine.
      for (let i = 0; i < 2000 && !ready(); i++) await new Promise((r) => setTimeout(r, 10));
      should([...booted].sort()).eql(['CP001', 'CP002', 'EV7']);
      // 1.6 chargers start charging; in 2.0.1 plugging in already opens a transaction.
      should([...charging].sort()).eql(['CP001', 'CP002', 'EV7']);
      const codes = await Promise.all(
        [a, b].map(
          (p) =>
            new Promise<number | null>((resolve) => {
              p.once('exit', (code) => resolve(code));
              p.kill('SIGTERM');
            }),
        ),
      );
      should(codes).eql([0, 0]);
      should(out).match(/CP001 booted/);
    } finally {
      a.kill('SIGKILL');
      b.kill('SIGKILL');
      await central.close();
    }
  });

  it('says what is missing', async function () {
    this.timeout(30_000); // a child process under tsx: seconds to start on a busy machine
    const p = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/sim/charge-point-cli.ts', '--id', 'X'],
      { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let err = '';
    p.stderr.on('data', (d) => {
      err += d;
    });
    const code = await new Promise<number | null>((resolve) => p.once('exit', resolve));
    should(code).not.equal(0);
    should(err).match(/--url/);
  });

  it('plays the quirks of real chargers given as flags', async function () {
    this.timeout(30_000);
    const central = new TestCentral();
    await central.listen();
    const cli = new CliProcess('src/sim/charge-point-cli.ts', [
      '--url',
      central.url,
      '--id',
      'CP001',
      '--meter-interval',
      '0',
      '--ignore-profile',
      '--no-composite-schedule',
    ]);
    try {
      await central.waitFor('StatusNotification');
      const answer = await central.call(
        'CP001',
        'SetChargingProfile',
        setProfile('ocpp1.6', { purpose: 'TxDefaultProfile', limit: 5000 }),
      );
      should(answer).eql({ status: 'Accepted' });
      const composite = await central
        .call('CP001', 'GetCompositeSchedule', { connectorId: 1, duration: 60 })
        .then(
          () => 'answered',
          (err: { rpcErrorCode?: string }) => err.rpcErrorCode,
        );
      should(composite).equal('NotImplemented');
      should(await cli.command('state CP001')).containEql({ event: 'ok' });
      // Accepted, and nothing applied.
      should(cli.lines.filter((l) => l.event === 'state').at(-1)).containEql({ limitW: null });
      should(await cli.command('quit')).containEql({ event: 'ok' });
      should(await cli.exit()).equal(0);
    } finally {
      await cli.kill();
      await central.close();
    }
  });

  it('--honour-unit A: a limit in W is Accepted and ignored, one in A is applied', async function () {
    this.timeout(30_000);
    const central = new TestCentral();
    await central.listen();
    const cli = new CliProcess('src/sim/charge-point-cli.ts', [
      '--url',
      central.url,
      '--id',
      'CP001',
      '--meter-interval',
      '0',
      '--honour-unit',
      'A',
    ]);
    try {
      await central.waitFor('StatusNotification');
      const state = async () => {
        should(await cli.command('state CP001')).containEql({ event: 'ok' });
        return cli.lines.filter((l) => l.event === 'state').at(-1);
      };
      const inW = setProfile('ocpp1.6', { purpose: 'TxDefaultProfile', limit: 5000 });
      should(await central.call('CP001', 'SetChargingProfile', inW)).eql({ status: 'Accepted' });
      should(await state()).containEql({ limitW: null });
      const inA = setProfile('ocpp1.6', { purpose: 'TxDefaultProfile', limit: 10, unit: 'A' });
      should(await central.call('CP001', 'SetChargingProfile', inA)).eql({ status: 'Accepted' });
      should(await state()).containEql({ limitW: 6900 }); // 10 A x 230 V x 3
      should(await cli.command('quit')).containEql({ event: 'ok' });
      should(await cli.exit()).equal(0);
    } finally {
      await cli.kill();
      await central.close();
    }
  });

  it('plays faults on commands from stdin and prints the limits it applies as JSON lines', async function () {
    this.timeout(30_000);
    const central = new TestCentral();
    await central.listen();
    const cli = new CliProcess('src/sim/charge-point-cli.ts', [
      '--url',
      central.url,
      '--id',
      'CP001',
      '--meter-interval',
      '0',
      '--start',
    ]);
    try {
      await central.waitFor('StartTransaction');
      await until(() => central.of('StatusNotification').some((p) => p.status === 'Charging'));
      await central.call(
        'CP001',
        'SetChargingProfile',
        setProfile('ocpp1.6', { purpose: 'TxDefaultProfile', limit: 5000 }),
      );
      const limit = await cli.waitFor((l) => l.event === 'limit');
      should(limit).containEql({ id: 'CP001', limitW: 5000, powerW: 5000 });
      should(Date.parse(limit.at as string))
        .be.a.Number()
        .and.not.be.NaN();

      // The network drops (socket destroyed) and comes back without booting.
      let mark = central.received.length;
      should(await cli.command('drop CP001 100')).containEql({ event: 'ok' });
      await cli.waitFor((l) => l.event === 'resumed');
      should(central.closes).eql([{ identity: 'CP001', code: 1006 }]);
      should(await cli.command('state CP001')).containEql({ event: 'ok' });
      should(cli.lines.filter((l) => l.event === 'state').at(-1)).containEql({
        id: 'CP001',
        connected: true,
        status: 'Charging',
        limitW: 5000,
      });
      should(central.received.slice(mark).map((r) => r.method)).eql([]);

      // A reboot forgets the profile and boots again.
      mark = central.received.length;
      should(await cli.command('reboot CP001 50')).containEql({ event: 'ok' });
      await central.waitFor('BootNotification', mark);
      await cli.waitFor((l) => l.event === 'limit' && l.limitW === null);
      await cli.command('limits CP001');
      const history = cli.lines.filter((l) => l.event === 'limits').at(-1)?.history as {
        limitW: number | null;
      }[];
      should(history.map((h) => h.limitW)).eql([5000, null]);

      // Bad commands are answered with why; they do not stop the simulator.
      should(await cli.command('drop CP999')).containEql({
        event: 'error',
        error: 'no charger CP999',
      });
      should(await cli.command('reboot CP001 soon')).containEql({ event: 'error' });
      should(await cli.command('jump CP001')).containEql({ event: 'error' });
      // quit closes and exits, though stdin stays open.
      should(await cli.command('quit')).containEql({ event: 'ok' });
      should(await cli.exit()).equal(0);
      should(cli.notJson).eql([]);
    } finally {
      await cli.kill();
      await central.close();
    }
  });
});
