/**
 * Node-RED as a real process, for tests that need what a user runs: a user directory with
 * this package installed as a user would (listed in its package.json, and in node_modules
 * a symlink to the repository; palette modules that a flow needs, such as FlowFuse Dashboard 2,
 * likewise, linked from the repository's node_modules), a settings file, a flow file, and
 * `node red.js` started,
 * killed (any signal, kill -9 included) and started again on the same directory and port.
 * Needs the build (dist/, nodes/<type>/<type>.js).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../../src/sim/battery';

export { freePort };

const root = path.join(__dirname, '../..');
const pkg = require(path.join(root, 'package.json')) as { name: string };

export interface NodeRedProcessOptions {
  /** The flows to deploy (written to the flow file before each start unless `keepFlows`). */
  flows: unknown[];
  /** Node-RED's port (default: a free one, kept across restarts). */
  port?: number;
  /** Log level of Node-RED's console log. Default 'info'. */
  logLevel?: string;
  /** The red.js to run (default: the devDependency's). */
  redJs?: string;
  /** The node to run it with (default: this one). */
  node?: string;
  /**
   * Palette modules to install beside the package (names of devDependencies, linked from the
   * repository's node_modules), e.g. `@flowfuse/node-red-dashboard`.
   */
  modules?: string[];
  /** More settings.js entries (plain JSON), e.g. `adminAuth` with bcrypt password hashes. */
  settings?: Record<string, unknown>;
}

export class NodeRedProcess {
  readonly dir: string;
  readonly userDir: string;
  port = 0;
  /** Everything the current and earlier processes printed, in order. */
  log = '';
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();

  constructor(private readonly options: NodeRedProcessOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-node-red-'));
    this.userDir = path.join(this.dir, 'userdir');
    fs.mkdirSync(path.join(this.userDir, 'node_modules', pkg.name.split('/')[0] ?? ''), {
      recursive: true,
    });
    fs.symlinkSync(root, path.join(this.userDir, 'node_modules', pkg.name), 'dir');
    const dependencies: Record<string, string> = { [pkg.name]: `file:${root}` };
    for (const name of options.modules ?? []) {
      const dir = path.dirname(require.resolve(`${name}/package.json`, { paths: [root] }));
      const link = path.join(this.userDir, 'node_modules', name);
      fs.mkdirSync(path.dirname(link), { recursive: true });
      fs.symlinkSync(dir, link, 'dir');
      dependencies[name] = `file:${dir}`;
    }
    fs.writeFileSync(
      path.join(this.userDir, 'package.json'),
      JSON.stringify({ name: 'node-red-project', private: true, dependencies }),
    );
  }

  get base(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Starts Node-RED and resolves once it has started its flows (at most `waitMs`). */
  async start(waitMs = 60_000): Promise<void> {
    if (this.child) throw new Error('Node-RED is already running');
    if (!this.port) this.port = this.options.port ?? (await freePort());
    const settings = path.join(this.userDir, 'settings.js');
    fs.writeFileSync(
      settings,
      `module.exports = ${JSON.stringify({
        uiHost: '127.0.0.1',
        uiPort: this.port,
        flowFile: 'flows.json',
        credentialSecret: false,
        telemetry: { enabled: false, updateNotification: false },
        diagnostics: { enabled: false, ui: false },
        externalModules: { autoInstall: false, palette: { allowInstall: false } },
        editorTheme: { tours: false, projects: { enabled: false } },
        logging: {
          console: { level: this.options.logLevel ?? 'info', metrics: false, audit: false },
        },
        ...this.options.settings,
      })};\n`,
    );
    const flowFile = path.join(this.userDir, 'flows.json');
    if (!fs.existsSync(flowFile)) fs.writeFileSync(flowFile, JSON.stringify(this.options.flows));
    const mark = this.log.length;
    const redJs = this.options.redJs ?? require.resolve('node-red/red.js');
    const child = spawn(
      this.options.node ?? process.execPath,
      [redJs, '--settings', settings, '--userDir', this.userDir],
      { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    const append = (d: Buffer) => {
      this.log += d.toString();
    };
    child.stdout?.on('data', append);
    child.stderr?.on('data', append);
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        if (this.child === child) this.child = null;
        resolve();
      }),
    );
    const deadline = Date.now() + waitMs;
    while (!/Started flows/.test(this.log.slice(mark))) {
      if (this.child !== child) throw new Error(`Node-RED exited while starting:\n${this.tail()}`);
      if (Date.now() > deadline)
        throw new Error(`Node-RED did not start its flows within ${waitMs} ms:\n${this.tail()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Sends `signal` (default SIGKILL: kill -9) and resolves once the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill(signal);
    await this.exited;
  }

  /** Stops Node-RED (SIGTERM, then SIGKILL after `graceMs`) and removes its directory. */
  async dispose(graceMs = 10_000): Promise<void> {
    const child = this.child;
    if (child) {
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await this.kill('SIGTERM');
      clearTimeout(timer);
    }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** The last lines of the log, for error messages. */
  tail(lines = 30): string {
    return this.log.split('\n').slice(-lines).join('\n');
  }
}
