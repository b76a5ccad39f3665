import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import should from 'should';
import { NET_PROBLEM_TEXTS, type NetTarget, netProblem } from '../../src/net-errors';

// The errors come from real sockets on loopback where the machine can make them; errors that
// need a missing device or another network are built as Node.js and serialport make them.

const listenOn = (port: number): NetTarget => ({ op: 'listen', host: '127.0.0.1', port });
const connectTo = (port: number): NetTarget => ({ op: 'connect', host: '127.0.0.1', port });

function errno(code: string, message = `${code.toLowerCase()} happened`): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

describe('netProblem: short causes of a listener, connection or serial port that cannot open', () => {
  it('a port in use (a real second listener on it): "port N in use"', async () => {
    const first = net.createServer();
    await new Promise<void>((r) => first.listen(0, '127.0.0.1', r));
    const port = (first.address() as net.AddressInfo).port;
    const second = net.createServer();
    try {
      const err = await new Promise<Error>((resolve) => {
        second.once('error', resolve);
        second.listen(port, '127.0.0.1');
      });
      const p = netProblem(err, listenOn(port));
      should(p).have.properties({ op: 'listen', code: 'in-use', errno: 'EADDRINUSE' });
      should(p.text).equal(`port ${port} in use`);
    } finally {
      await new Promise((r) => first.close(r));
    }
  });

  it('a refused connection (a real connect to a closed loopback port): "host:port refused"', async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise((r) => s.close(r));
    const err = await new Promise<Error>((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('error', resolve);
    });
    const p = netProblem(err, connectTo(port));
    should(p).have.properties({ code: 'refused', errno: 'ECONNREFUSED' });
    should(p.text).equal(`127.0.0.1:${port} refused`);
  });

  it('maps the other listen errors, with the address', () => {
    should(netProblem(errno('EACCES'), listenOn(80)).text).equal(
      'cannot listen on 127.0.0.1:80: permission denied',
    );
    should(
      netProblem(errno('EADDRNOTAVAIL'), { op: 'listen', host: '10.9.9.9', port: 9220 }).text,
    ).equal('cannot listen on 10.9.9.9:9220: no such address here');
    should(
      netProblem(errno('EADDRNOTAVAIL'), { op: 'listen', host: '::2', port: 9220 }).text,
    ).equal('cannot listen on [::2]:9220: no such address here');
    should(netProblem(errno('ENOTFOUND'), { op: 'listen', host: 'nohost', port: 9220 }).text).equal(
      'cannot listen on nohost: unknown host',
    );
  });

  it('maps the connect errors: unreachable, timed out, unknown host', () => {
    const t: NetTarget = { op: 'connect', host: '192.168.1.50', port: 502 };
    should(netProblem(errno('EHOSTUNREACH'), t).text).equal('192.168.1.50 unreachable');
    should(netProblem(errno('ENETUNREACH'), t).code).equal('unreachable');
    should(netProblem(errno('ETIMEDOUT'), t).text).equal('192.168.1.50:502 timed out');
    // modbus-serial's own connect timeout carries no code
    should(netProblem(new Error('TCP Connection Timed Out'), t)).have.properties({
      code: 'timeout',
      errno: 'ETIMEDOUT',
    });
    should(
      netProblem(errno('ENOTFOUND'), { op: 'connect', host: 'inverter.local', port: 502 }).text,
    ).equal('inverter.local not found');
  });

  it('finds the errno in a message when the error has no code, or in its cause', () => {
    should(
      netProblem(new Error('connect ECONNREFUSED 127.0.0.1:5020'), connectTo(5020)).text,
    ).equal('127.0.0.1:5020 refused');
    const wrapped = new Error('could not open', { cause: errno('EHOSTUNREACH') });
    should(netProblem(wrapped, connectTo(502)).code).equal('unreachable');
  });

  it('serial ports: not found, permission denied, busy, serialport missing (serialport words)', () => {
    const tty: NetTarget = { op: 'open', path: '/dev/ttyUSB0' };
    should(
      netProblem(new Error('Error: No such file or directory, cannot open /dev/ttyUSB0'), tty).text,
    ).equal('/dev/ttyUSB0 not found');
    should(
      netProblem(new Error('Error: Permission denied, cannot open /dev/ttyUSB0'), tty).text,
    ).equal('/dev/ttyUSB0: permission denied');
    should(
      netProblem(new Error('Error Resource temporarily unavailable Cannot lock port'), tty).text,
    ).equal('/dev/ttyUSB0 busy');
    should(netProblem(errno('ENOENT'), tty).code).equal('not-found');
    should(
      netProblem(
        Object.assign(new Error("Cannot find module 'serialport'"), { code: 'MODULE_NOT_FOUND' }),
        tty,
      ).text,
    ).equal('serialport not installed');
  });

  it('anything else: the errno, or the message without "Error: " and cut short', () => {
    should(netProblem(errno('ECONNRESET'), connectTo(502)).text).equal('127.0.0.1:502: ECONNRESET');
    // an errno that has no text for this kind of opening is "other" too
    should(netProblem(errno('EADDRINUSE'), connectTo(502))).have.properties({
      code: 'other',
      text: '127.0.0.1:502: EADDRINUSE',
    });
    const long = netProblem(new Error(`Error: Error: ${'x'.repeat(100)}`), {
      op: 'open',
      path: 'COM3',
    });
    should(long.code).equal('other');
    should(long.text).equal(`COM3: ${'x'.repeat(39)}…`);
    should(netProblem('just a string', connectTo(1)).text).equal('127.0.0.1:1: just a string');
    should(netProblem(undefined, connectTo(1)).code).equal('other');
  });

  it('the nodes’ en-US catalogs repeat these texts, for every cause that their node can show', () => {
    const catalog = (type: string) =>
      JSON.parse(
        fs.readFileSync(
          path.join(__dirname, `../../nodes/${type}/locales/en-US/${type}.json`),
          'utf8',
        ),
      )[type].status.net;
    // qe-ocpp shows its central system's listener; qe-modbus its bus (TCP or serial).
    should(catalog('qe-ocpp')).eql({ listen: NET_PROBLEM_TEXTS.listen });
    should(catalog('qe-modbus')).eql({
      connect: NET_PROBLEM_TEXTS.connect,
      open: NET_PROBLEM_TEXTS.open,
    });
  });
});
