/**
 * The demo of `npm start` (scripts/demo.ts), run as it is run: a real child process, with
 * its own free ports and a temporary Node-RED user directory (QE_DEMO_* variables), so that
 * it shares nothing with the other tests. Needs the build (`npm test` builds first).
 *
 * It checks what a newcomer would see: commands of the three simulated devices reaching
 * COMPLETED in the terminal, each event line tagged with its site, the editor answering, and SIGTERM stopping everything (exit
 * code 0, no process of the demo's tree left behind). About 5 s on an idle machine; the
 * bounds below are generous for a busy one.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import should from 'should';
import { freePort } from '../src/sim/battery';

const ROOT = path.join(__dirname, '..');
const ASSETS = ['ast_ev_001', 'ast_ev_002', 'ast_batt_001'];
/** The charger of the second site, whose schedule comes only over MQTT. */
const FLEET_ASSET = 'ast_ev_101';
const COORDINATORS = (
  JSON.parse(fs.readFileSync(path.join(ROOT, 'scripts', 'demo-flow.json'), 'utf8')) as {
    type: string;
    siteId?: string;
  }[]
).filter((n) => n.type === 'qe-coordinator');
/** The siteId of the demo flow's first coordinator (the devices' site). */
const SITE_ID = COORDINATORS[0]?.siteId;
/** Every site of the demo flow: their ids tag the event lines. */
const SITE_IDS = COORDINATORS.map((c) => c.siteId);
/** From spawning the demo to a COMPLETED command of every asset (takes ~5 s when idle). */
const COMPLETED_WITHIN_MS = 90_000;
/** From SIGTERM to the exit (the demo bounds its own shutdown at 10 s). */
const EXIT_WITHIN_MS = 20_000;

/**
 * `<time>  <site>  command  <asset>  <TYPE>  <value> kW  <STATUS>`, as scripts/demo.ts
 * prints it.
 */
const COMMAND_LINE =
  /^\S+\s+(\S+)\s+command\s+(\S+)\s+([A-Z_]+)\s+(-?\d+(?:\.\d+)?) kW\s+([A-Z_]+)/;
/** `<time>  <site>  <kind>  ...`: the site column of any line. */
const SITE_AND_KIND = /^\S+\s+(\S+)\s+(\S+)/;
const EDITOR_LINE = /editor at (http:\/\/\S+)/;
/** `<time>  -  fleet  <siteId>  ack schedule <id> <status>...`, as the central prints it. */
const ACK_LINE = /^\S+\s+-\s+fleet\s+(\S+)\s+ack schedule (\S+) (\w+)/;
const BROKER_LINE = /fleet broker (mqtt:\/\/\S+), in this process \(QE_MQTT_URL=/;

interface CommandLine {
  site: string;
  assetId: string;
  type: string;
  valueKw: number;
  status: string;
}

function parseCommand(line: string): CommandLine | null {
  const m = COMMAND_LINE.exec(line);
  if (!m) return null;
  return { site: m[1]!, assetId: m[2]!, type: m[3]!, valueKw: Number(m[4]), status: m[5]! };
}

/** Distinct free ports on 127.0.0.1. */
async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

/** The pids of every process below `pid` (children, their children...), from `ps`. */
function descendants(pid: number): number[] {
  const table = execFileSync('ps', ['-A', '-o', 'pid=', '-o', 'ppid='], { encoding: 'utf8' });
  const children = new Map<number, number[]>();
  for (const row of table.trim().split('\n')) {
    const [p, pp] = row.trim().split(/\s+/).map(Number);
    if (p === undefined || pp === undefined) continue;
    children.set(pp, [...(children.get(pp) ?? []), p]);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function psText(pids: number[]): string {
  try {
    return execFileSync('ps', ['-o', 'pid=,ppid=,args=', '-p', pids.join(',')], {
      encoding: 'utf8',
    });
  } catch {
    return '(gone)';
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 15_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer within 15 s`)));
    req.on('error', reject);
  });
}

describe('the demo (npm start)', function () {
  this.timeout(COMPLETED_WITHIN_MS + EXIT_WITHIN_MS + 30_000);

  let child: ChildProcess;
  let userDir: string;
  let editorPort: number;
  const lines: string[] = [];
  let stderr = '';
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Called whenever a line arrives or the demo exits. */
  let onChange: () => void = () => {};
  let started = 0;
  let completedAfterMs = 0;

  const tail = () =>
    `\n--- stdout (last 40 lines)\n${lines.slice(-40).join('\n')}\n--- stderr\n${stderr.slice(-4000)}`;

  /** Resolves when `done()` holds, rejects when the demo exits first or `ms` pass. */
  function waitFor(what: string, ms: number, done: () => boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        onChange = () => {};
        reject(new Error(`the demo did not show ${what} within ${ms / 1000} s${tail()}`));
      }, ms);
      onChange = () => {
        if (done()) {
          clearTimeout(timer);
          onChange = () => {};
          resolve();
        } else if (child.exitCode !== null || child.signalCode !== null) {
          clearTimeout(timer);
          onChange = () => {};
          reject(new Error(`the demo exited (${child.exitCode ?? child.signalCode})${tail()}`));
        }
      };
      onChange();
    });
  }

  const completed = () =>
    new Set(
      lines
        .map(parseCommand)
        .filter((c) => c?.status === 'COMPLETED')
        .map((c) => c?.assetId),
    );

  before(async () => {
    const [port, ocppPort, modbusPort, mqttPort] = await freePorts(4);
    editorPort = port!;
    userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-demo-test-'));
    started = Date.now();
    child = spawn(process.execPath, ['--import', 'tsx', path.join('scripts', 'demo.ts')], {
      cwd: ROOT,
      env: {
        ...process.env,
        QE_DEMO_HOST: '127.0.0.1',
        QE_DEMO_PORT: String(port),
        QE_DEMO_OCPP_PORT: String(ocppPort),
        QE_DEMO_MODBUS_PORT: String(modbusPort),
        QE_DEMO_MQTT_PORT: String(mqttPort),
        QE_DEMO_USERDIR: userDir,
        QE_DEMO_LOG_LEVEL: 'warn',
        // Compile afresh, so that tsx's esbuild service runs below the demo as it does on a
        // fresh clone: the test then sees that it goes away too.
        TSX_DISABLE_CACHE: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        resolve({ code, signal });
        onChange();
      }),
    );
    let partial = '';
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      lines.push(...parts);
      onChange();
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr += chunk;
    });

    await waitFor('a COMPLETED command of each asset of both sites', COMPLETED_WITHIN_MS, () =>
      [...ASSETS, FLEET_ASSET].every((a) => completed().has(a)),
    );
    completedAfterMs = Date.now() - started;
  });

  after(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (userDir) fs.rmSync(userDir, { recursive: true, force: true });
  });

  it('prints each command lifecycle of the two chargers and the battery up to COMPLETED', () => {
    const commands = lines.map(parseCommand).filter((c): c is CommandLine => c !== null);
    for (const assetId of ASSETS) {
      const mine = commands.filter((c) => c.assetId === assetId);
      const statuses = mine.map((c) => c.status);
      should(statuses).containDeep(['CREATED', 'DISPATCHED', 'COMPLETED']);
      // The first COMPLETED command went out before it completed.
      const done = mine.find((c) => c.status === 'COMPLETED')!;
      should(done.type).match(/^SET_(CHARGE|DISCHARGE)_RATE$/);
      should(
        mine.some(
          (c) => c.status === 'DISPATCHED' && c.type === done.type && c.valueKw === done.valueKw,
        ),
      ).be.true();
    }
    should(commands.filter((c) => c.status === 'FAILED' || c.status === 'TIMED_OUT')).eql([]);
    should(completedAfterMs).be.below(COMPLETED_WITHIN_MS);
  });

  it("tags each event line with its coordinator's siteId, and other lines with -", () => {
    should(SITE_ID).be.a.String().and.not.be.empty();
    should(SITE_IDS).have.length(2);
    const tagged = lines.map((l) => SITE_AND_KIND.exec(l)).filter((m) => m !== null);
    const ofKind = (kind: string) => tagged.filter((m) => m[2] === kind).map((m) => m[1]);
    // Event lines (command, state, schedule): the site; the devices and the demo: none.
    for (const kind of ['command', 'state', 'schedule']) {
      const sites = ofKind(kind);
      should(sites.length).be.above(0, `no ${kind} line${tail()}`);
      const strangers = sites.filter((site) => !SITE_IDS.includes(site));
      should(strangers).eql([], `${kind} lines${tail()}`);
    }
    // Both sites have command and schedule lines of their own.
    for (const kind of ['command', 'schedule']) {
      should(new Set(ofKind(kind))).eql(new Set(SITE_IDS), `${kind} lines${tail()}`);
    }
    for (const kind of ['device', 'demo', 'fleet']) {
      const sites = ofKind(kind);
      should(sites.length).be.above(0, `no ${kind} line${tail()}`);
      should(new Set(sites)).eql(new Set(['-']), `${kind} lines${tail()}`);
    }
  });

  it("the central's schedule reaches both sites over the in-process broker: two acks, commands dispatched on both", () => {
    should(lines.some((l) => BROKER_LINE.test(l))).be.true(`no fleet broker line${tail()}`);
    const acks = lines.map((l) => ACK_LINE.exec(l)).filter((m) => m !== null);
    should(acks.map((m) => `${m[1]} ${m[2]} ${m[3]}`).sort()).eql(
      SITE_IDS.map((site) => `${site} fleet-1 accepted`).sort(),
      `acks${tail()}`,
    );
    // The second site's charger gets its commands only over MQTT: dispatched and completed.
    const fleet = lines.map(parseCommand).filter((c) => c?.assetId === FLEET_ASSET);
    should(fleet.every((c) => c?.site === SITE_IDS[1])).be.true();
    should(fleet.map((c) => c?.status)).containDeep(['CREATED', 'DISPATCHED', 'COMPLETED']);
    // The first site's schedule over MQTT (the battery's) arrived and made commands there.
    should(
      lines.some((l) => new RegExp(`^\\S+\\s+${SITE_ID}\\s+schedule\\s+fleet-1\\s`).test(l)),
    ).be.true(`no fleet-1 schedule line of ${SITE_ID}${tail()}`);
  });

  it('prints the URL of the editor, which answers 200', async () => {
    const line = lines.find((l) => EDITOR_LINE.test(l));
    should.exist(line, `no editor URL in the output${tail()}`);
    const url = EDITOR_LINE.exec(line!)![1]!;
    should(url).equal(`http://127.0.0.1:${editorPort}/`);
    const res = await get(url);
    should(res.status).equal(200);
    should(res.body).match(/Node-RED/);
  });

  it('stops on SIGTERM with exit code 0 and leaves no process behind', async () => {
    const tree = descendants(child.pid!);
    const treeText = tree.length > 0 ? psText(tree) : '(none)';
    child.kill('SIGTERM');
    const result = await Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(
          () => reject(new Error(`no exit within ${EXIT_WITHIN_MS / 1000} s of SIGTERM${tail()}`)),
          EXIT_WITHIN_MS,
        ).unref(),
      ),
    ]);
    should(result).eql({ code: 0, signal: null }, `exit ${JSON.stringify(result)}${tail()}`);
    should(lines.some((l) => /\bstopped$/.test(l))).be.true();
    // A child may take a moment to see its parent gone (tsx's esbuild service, which the
    // test makes sure exists, exits when its stdin closes): nothing may stay longer.
    const deadline = Date.now() + 5000;
    while (tree.some(alive) && Date.now() < deadline) await sleep(100);
    const left = tree.filter(alive);
    should(left).eql(
      [],
      `processes of the demo's tree still alive 5 s after its exit:\n${left.length ? psText(left) : ''}` +
        `\n(its tree at SIGTERM:\n${treeText})`,
    );
  });
});
