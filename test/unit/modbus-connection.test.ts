import { ServerTCP } from 'modbus-serial';
import should from 'should';
import {
  ModbusConnection,
  ModbusDeviceError,
  ModbusTransportError,
} from '../../src/adapters/modbus/connection';
import { freePort } from '../../src/sim/battery';
import { untilWith } from '../helpers/wait';

// A real modbus-serial TCP server on loopback; the connection under test is the real client.

interface Server {
  regs: Map<string, number>;
  close(): Promise<void>;
  silentUnits: Set<number>;
}

async function startServer(
  port: number,
  regs = new Map<string, number>(),
  silentUnits = new Set<number>(),
): Promise<Server> {
  const key = (unit: number, addr: number) => `${unit}:${addr}`;
  const server = new ServerTCP(
    {
      getHoldingRegister: (addr: number, unit: number) =>
        new Promise<number>((resolve, reject) => {
          if (silentUnits.has(unit)) return; // never answers
          if (addr >= 1000) {
            reject(Object.assign(new Error('illegal'), { modbusErrorCode: 2 }));
            return;
          }
          resolve(regs.get(key(unit, addr)) ?? 0);
        }),
      setRegister: (addr: number, value: number, unit: number) => {
        if (addr >= 1000) throw Object.assign(new Error('illegal'), { modbusErrorCode: 2 });
        regs.set(key(unit, addr), value);
      },
    } as never,
    { host: '127.0.0.1', port, unitID: 255 },
  );
  await new Promise<void>((resolve) => server.on('initialized', () => resolve()));
  return {
    regs,
    silentUnits,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of server.socks.keys()) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const until = untilWith({ rounds: 400 });

describe('ModbusConnection (loopback, real modbus-serial)', () => {
  let server: Server | null = null;
  let conn: ModbusConnection | null = null;
  afterEach(async () => {
    await conn?.close();
    await server?.close();
    conn = null;
    server = null;
  });

  it('checks its options', () => {
    should(() => new ModbusConnection({ transport: 'udp' as never })).throw(
      /transport must be tcp or rtu/,
    );
    should(() => new ModbusConnection({ transport: 'tcp' })).throw(/tcp needs a host/);
    should(() => new ModbusConnection({ transport: 'rtu' })).throw(/rtu needs a serial port path/);
    should(() => new ModbusConnection({ transport: 'tcp', host: 'x', timeoutMs: 0 })).throw(
      /timeoutMs must be > 0/,
    );
  });

  it('writes and reads registers of several unit ids through one queue', async () => {
    const port = await freePort();
    server = await startServer(port);
    conn = new ModbusConnection({ transport: 'tcp', host: '127.0.0.1', port, timeoutMs: 300 });
    conn.start();
    await until(() => conn?.state === 'connected', 'connected');
    await Promise.all([
      conn.write(1, 10, [1, 2]),
      conn.write(2, 10, [3]),
      conn.write(2, 11, [4], 'FC6'),
    ]);
    should(await conn.readHolding(1, 10, 2)).eql([1, 2]);
    should(await conn.readHolding(2, 10, 2)).eql([3, 4]);
    should(server.regs.get('1:11')).equal(2);
  });

  it('a device exception is a ModbusDeviceError with its code; nothing else is disturbed', async () => {
    const port = await freePort();
    server = await startServer(port);
    conn = new ModbusConnection({ transport: 'tcp', host: '127.0.0.1', port, timeoutMs: 300 });
    conn.start();
    await until(() => conn?.state === 'connected', 'connected');
    const err = await conn.readHolding(1, 2000, 1).then(
      () => null,
      (e: Error) => e,
    );
    should(err).be.instanceOf(ModbusDeviceError);
    should((err as ModbusDeviceError).modbusCode).equal(2);
    should((err as Error).message).match(
      /unit 1 answered Modbus exception 2 \(Illegal data address\)/,
    );
    should(await conn.readHolding(1, 5, 1)).eql([0]);
  });

  it('a unit that does not answer times out without clearing the queue of the others', async () => {
    const port = await freePort();
    server = await startServer(port, new Map([['2:5', 42]]), new Set([9]));
    conn = new ModbusConnection({ transport: 'tcp', host: '127.0.0.1', port, timeoutMs: 150 });
    conn.start();
    await until(() => conn?.state === 'connected', 'connected');
    const silent = conn.readHolding(9, 5, 1).then(
      () => null,
      (e: Error) => e,
    );
    const other = conn.readHolding(2, 5, 1);
    should(conn.queueDepth).equal(2);
    const e = await silent;
    should(e).be.instanceOf(ModbusTransportError);
    should((e as ModbusTransportError).timeout).be.true();
    should((e as Error).message).match(/unit 9 did not answer within 150 ms/);
    should(await other).eql([42]);
  });

  it('refuses at once while not connected (the caller retries), and bounds the queue', async () => {
    const port = await freePort();
    conn = new ModbusConnection({
      transport: 'tcp',
      host: '127.0.0.1',
      port,
      timeoutMs: 100,
      reconnect: { initialMs: 20, maxMs: 50 },
      queueLimit: 1,
    });
    conn.start();
    await until(() => conn?.state === 'disconnected', 'disconnected (nothing listens)');
    await should(conn.readHolding(1, 0, 1)).be.rejectedWith(
      /not connected to 127\.0\.0\.1:\d+ \(cannot connect/,
    );
    server = await startServer(port, new Map(), new Set([1]));
    await until(() => conn?.state === 'connected', 'connected once the server is up');
    const first = conn.readHolding(1, 0, 1).catch(() => null);
    const second = conn.readHolding(1, 0, 1).catch(() => null);
    await should(conn.readHolding(1, 0, 1)).be.rejectedWith(
      /queue to .* is full \(1 requests waiting\)/,
    );
    await Promise.all([first, second]);
  });

  it('reconnects by itself after the device restarts, with a new client', async () => {
    const port = await freePort();
    server = await startServer(port);
    conn = new ModbusConnection({
      transport: 'tcp',
      host: '127.0.0.1',
      port,
      timeoutMs: 200,
      reconnect: { initialMs: 20, maxMs: 100 },
    });
    const states: string[] = [];
    conn.on('state', (s: string) => states.push(s));
    conn.start();
    await until(() => conn?.state === 'connected', 'connected');
    await server.close();
    await until(() => conn?.state !== 'connected', 'noticed the drop');
    server = await startServer(port);
    await until(() => conn?.state === 'connected', 'reconnected', 600);
    await conn.write(1, 1, [7]);
    should(server.regs.get('1:1')).equal(7);
    should(states.filter((s) => s === 'connected').length).be.aboveOrEqual(2);
  });

  it('a bus that cannot open says why in short (problem), through the retries, until it connects', async () => {
    const port = await freePort();
    conn = new ModbusConnection({
      transport: 'tcp',
      host: '127.0.0.1',
      port,
      timeoutMs: 200,
      reconnect: { initialMs: 20, maxMs: 50 },
    });
    const seen: (string | null)[] = [];
    conn.on('state', () => seen.push(conn?.problem?.text ?? null));
    conn.start();
    await until(() => seen.filter((t) => t !== null).length >= 4, 'refused a few times');
    should(conn.problem).have.properties({ code: 'refused', errno: 'ECONNREFUSED' });
    // from the first failure on, every state change (connecting again too) keeps the cause
    const refused = `127.0.0.1:${port} refused`;
    should(seen.slice(seen.indexOf(refused)).filter((t) => t !== refused)).eql([]);
    should(conn.error).match(/ECONNREFUSED/);
    server = await startServer(port);
    await until(() => conn?.state === 'connected', 'connected', 600);
    should(conn.problem).be.null();
  });

  it('a serial port that does not exist: "<path> not found" (real serialport)', async () => {
    conn = new ModbusConnection({
      transport: 'rtu',
      serialPath: '/dev/qe-no-such-tty',
      reconnect: { initialMs: 5_000 },
    });
    conn.start();
    await until(() => conn?.problem !== null, 'the open failed');
    should(conn.problem).have.properties({ op: 'open', code: 'not-found' });
    should(conn.problem?.text).equal('/dev/qe-no-such-tty not found');
  });

  it('close rejects what is queued and stops reconnecting', async () => {
    const port = await freePort();
    server = await startServer(port, new Map(), new Set([3]));
    conn = new ModbusConnection({ transport: 'tcp', host: '127.0.0.1', port, timeoutMs: 500 });
    conn.start();
    await until(() => conn?.state === 'connected', 'connected');
    const pending = conn.readHolding(3, 0, 1);
    const queued = conn.readHolding(3, 1, 1);
    await conn.close();
    await should(queued).be.rejectedWith(/was closed/);
    await pending.catch(() => {});
    should(conn.state).equal('closed');
    await should(conn.readHolding(1, 0, 1)).be.rejectedWith(/is closed/);
  });
});
