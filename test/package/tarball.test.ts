/**
 * The package as users get it. A copy of the repository as a clean clone has it (the files
 * that git tracks or would track: no dist/, no compiled nodes/<type>/<type>.js) is packed with
 * `npm pack`, whose prepack script builds; the tarball's file list is checked; the tarball is
 * installed with npm into a fresh Node-RED user directory, as `npm install <package>` in
 * ~/.node-red does; and Node-RED is started on it as a real process: the runtime of
 * test/nodes/runtime.ts (Node-RED 4, or Node-RED 5 in the second pass of .ci/run, which runs
 * this file too), on the Node that runs the tests. Its admin API must list every node set of
 * package.json "node-red.nodes" enabled and without error, with help, icons, messages and
 * examples, and its log must show no load error.
 *
 * Needs git and npm on PATH and the project's node_modules (linked into the copy for the
 * build). The package's runtime dependencies come from npm's cache (warm after `npm ci`) or
 * the registry. About 30 s on an idle machine (pack with the build ~15 s, install ~10 s,
 * start ~5 s); the bounds below are generous for a busy one.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import should from 'should';
import { freePort } from '../../src/sim/battery';
import { nodeRedVersion, runtimeRequire } from '../nodes/runtime';

const ROOT = path.join(__dirname, '../..');

interface PackageJson {
  name: string;
  version: string;
  main: string;
  types: string;
  bin: Record<string, string>;
  'node-red': { nodes: Record<string, string> };
}
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as PackageJson;
const TYPES = Object.keys(pkg['node-red'].nodes);

const PACK_WITHIN_MS = 240_000;
const INSTALL_WITHIN_MS = 240_000;
const START_WITHIN_MS = 90_000;
const STOP_WITHIN_MS = 15_000;

/** What `npm test` adds to the environment for its own script, and c8's coverage collection. */
const NOT_FROM_A_USER =
  /^(npm_(lifecycle_|package_|command$|execpath$|node_execpath$)|INIT_CWD$|NODE_V8_COVERAGE$)/;

/**
 * The environment of a user's shell: npm, tsc and Node-RED run nothing of src/ from here, and
 * PATH loses the node_modules/.bin directories that `npm test` and npx put first (the
 * project's node_modules/.bin has the npm 10 that Node-RED depends on: `npm` must be the
 * user's own).
 */
function userEnv(): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !NOT_FROM_A_USER.test(k)),
  );
  for (const key of Object.keys(env).filter((k) => k.toUpperCase() === 'PATH')) {
    env[key] = env[key]
      ?.split(path.delimiter)
      .filter((dir) => !/[\\/](node_modules[\\/]\.bin|node-gyp-bin)$/.test(dir))
      .join(path.delimiter);
  }
  return env;
}

/** Runs a command to its end, within `ms` (else kills it by its pid and rejects). */
function run(
  cmd: string,
  args: string[],
  cwd: string,
  ms: number,
): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding('utf8').on('data', (s: string) => {
      stderr += s;
    });
    const what = `${cmd} ${args.join(' ')} (in ${cwd})`;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what}: not done within ${ms / 1000} s\n${stderr.slice(-4000)}`));
    }, ms);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`${what}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve({ stdout, stderr });
      else reject(new Error(`${what}: exit ${code ?? signal}\n${stdout}\n${stderr.slice(-4000)}`));
    });
  });
}

/** Copies what a clean clone has (tracked and not-ignored files) and links node_modules. */
function copyCleanClone(dest: string): void {
  let listed: string;
  try {
    listed = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    throw new Error(`this test needs a git checkout of the project: ${(err as Error).message}`);
  }
  for (const rel of listed.split('\0').filter(Boolean)) {
    const from = path.join(ROOT, rel);
    if (!fs.existsSync(from)) continue; // deleted in the work tree, not committed yet
    fs.mkdirSync(path.dirname(path.join(dest, rel)), { recursive: true });
    fs.copyFileSync(from, path.join(dest, rel));
  }
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dest, 'node_modules'), 'dir');
}

/** Every file under `dir` of the repository, relative to the repository, '/'-separated. */
function repoFiles(dir: string): string[] {
  const base = path.join(ROOT, dir);
  return (fs.readdirSync(base, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((d) => d.isFile())
    .map((d) => path.relative(ROOT, path.join(d.parentPath, d.name)).split(path.sep).join('/'));
}

function get(port: number, urlPath: string, accept: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: urlPath, headers: { Accept: accept }, timeout: 15_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(body)
            : reject(new Error(`GET ${urlPath}: ${res.statusCode} ${body.slice(0, 500)}`)),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: no answer within 15 s`)));
    req.on('error', reject);
  });
}

interface NodeSet {
  id: string;
  types: string[];
  enabled: boolean;
  module: string;
  version: string;
  err?: unknown;
}

describe('the package as users get it (npm pack, npm install, Node-RED)', function () {
  this.timeout(PACK_WITHIN_MS + INSTALL_WITHIN_MS + START_WITHIN_MS + STOP_WITHIN_MS + 30_000);

  const redDir = path.dirname(runtimeRequire.resolve('node-red/package.json'));
  let tmp: string;
  let userDir: string;
  let installedDir: string;
  let packed: { filename: string; files: { path: string }[] };
  let installOutput: string;
  let child: ChildProcess | undefined;
  let log = '';
  let port: number;

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-tarball-test-'));
    const clone = path.join(tmp, 'clone');
    const seconds = (since: number) => ((Date.now() - since) / 1000).toFixed(1);
    let since = Date.now();
    copyCleanClone(clone);
    if (
      fs.existsSync(path.join(clone, 'dist')) ||
      fs.existsSync(path.join(clone, 'nodes/qe-coordinator/qe-coordinator.js'))
    ) {
      throw new Error('the clean copy already holds build output: it must come from prepack');
    }

    // --json: the list of files on stdout; the build's output goes to stderr.
    const pack = await run(
      'npm',
      ['pack', '--json', '--pack-destination', tmp],
      clone,
      PACK_WITHIN_MS,
    );
    packed = (JSON.parse(pack.stdout) as (typeof packed)[])[0]!;
    const packSeconds = seconds(since);

    // A user directory as Node-RED makes it, with settings for this test: loopback, a free
    // port, no telemetry.
    userDir = path.join(tmp, 'node-red');
    fs.mkdirSync(userDir);
    fs.writeFileSync(
      path.join(userDir, 'package.json'),
      JSON.stringify({ name: 'node-red-project', version: '0.0.1', private: true }),
    );
    port = await freePort();
    fs.writeFileSync(
      path.join(userDir, 'settings.js'),
      `module.exports = ${JSON.stringify({
        uiHost: '127.0.0.1',
        uiPort: port,
        flowFile: 'flows.json',
        credentialSecret: 'tarball-test',
        logging: { console: { level: 'info', metrics: false, audit: false } },
        telemetry: { enabled: false },
      })};\n`,
    );
    since = Date.now();
    const install = await run(
      'npm',
      ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(tmp, packed.filename)],
      userDir,
      INSTALL_WITHIN_MS,
    );
    installOutput = `${install.stdout}${install.stderr}`;
    installedDir = path.join(userDir, 'node_modules', pkg.name);
    const installSeconds = seconds(since);

    since = Date.now();
    const redJs = path.join(redDir, 'red.js');
    const proc = spawn(process.execPath, [redJs, '-u', userDir], {
      cwd: userDir,
      env: userEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`Node-RED did not start within ${START_WITHIN_MS / 1000} s:\n${log}`));
      }, START_WITHIN_MS);
      const onData = (chunk: string) => {
        log += chunk;
        if (/Server now running at/.test(log)) {
          clearTimeout(timer);
          resolve();
        }
      };
      proc.stdout.setEncoding('utf8').on('data', onData);
      proc.stderr.setEncoding('utf8').on('data', onData);
      proc.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`Node-RED exited (${code ?? signal}) before it started:\n${log}`));
      });
    });
    const npmVersion = execFileSync('npm', ['--version'], {
      env: userEnv(),
      encoding: 'utf8',
      timeout: 30_000,
    }).trim();
    console.log(
      `      npm ${npmVersion}: copied and packed (with the build) in ${packSeconds} s, installed in ${installSeconds} s,` +
        ` Node-RED started in ${seconds(since)} s`,
    );
    for (const line of installOutput.split('\n').filter((l) => /^npm warn/.test(l))) {
      console.log(`      ${line}`);
    }
  });

  after(async () => {
    const proc = child;
    if (proc?.pid !== undefined && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((resolve) => proc.once('exit', resolve));
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), STOP_WITHIN_MS);
      await exited;
      clearTimeout(timer);
    }
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the tarball holds the build, the nodes, examples, README and LICENSE; no sources, no tests', () => {
    const files = new Set(packed.files.map((f) => f.path));
    const expected = [
      'package.json',
      'README.md',
      'LICENSE',
      pkg.main,
      pkg.types,
      ...Object.values(pkg.bin),
      ...Object.values(pkg['node-red'].nodes),
      ...TYPES.map((t) => `nodes/${t}/${t}.html`),
      // Every compiled source: dist/ from src/, the node runtimes (and nodes/lib) from nodes/.
      ...repoFiles('src')
        .filter((f) => f.endsWith('.ts'))
        .flatMap((f) =>
          ['.js', '.d.ts'].map((e) => f.replace(/^src\//, 'dist/').replace(/\.ts$/, e)),
        ),
      ...repoFiles('nodes')
        .filter((f) => f.endsWith('.ts'))
        .map((f) => f.replace(/\.ts$/, '.js')),
      // Every asset of the nodes (icons, locales) and every example flow.
      ...repoFiles('nodes').filter((f) => /\/(icons|locales)\//.test(f)),
      ...repoFiles('examples'),
      // The editor's scripts that the nodes' .html load from /resources/<package>/.
      ...repoFiles('resources'),
    ];
    should(expected.filter((f) => !files.has(f))).eql([], 'missing from the tarball');
    const stray = [...files].filter(
      (f) =>
        !/^(dist|nodes|examples|resources)\//.test(f) &&
        !['package.json', 'README.md', 'LICENSE'].includes(f),
    );
    should(stray).eql([], 'files outside dist/, nodes/, examples/, resources/');
    should([...files].filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).eql([]);
    should([...files].filter((f) => /(^|\/)test\/|\.test\.[jt]s$/.test(f))).eql([]);
  });

  it('installs with npm into a Node-RED user directory, with serialport for Modbus RTU', () => {
    should(fs.realpathSync(installedDir)).startWith(fs.realpathSync(userDir));
    const runtimes = Object.values(pkg['node-red'].nodes);
    should(runtimes.filter((f) => !fs.existsSync(path.join(installedDir, f)))).eql(
      [],
      `node runtimes missing from ${installedDir}`,
    );
    // What a user sees: a package whose install script npm did not ask about must be explained
    // in the README (npm 11 names them after the install).
    const unapproved = [...installOutput.matchAll(/install-scripts\s+(\S+?)@\d\S*\s+\(/g)].map(
      (m) => m[1]!,
    );
    const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    should(unapproved.filter((name) => !readme.includes(name))).eql(
      [],
      `npm named install scripts that the README does not explain:\n${installOutput}`,
    );
    // modbus-serial's optional serialport came along and its native binding loads on this
    // Node (modbus-serial leaves RTUBufferedPort out when it does not).
    const probe = execFileSync(
      process.execPath,
      ['-e', "console.log(typeof require('modbus-serial').RTUBufferedPort)"],
      { cwd: installedDir, encoding: 'utf8', timeout: 30_000 },
    );
    should(probe.trim()).equal('function');
  });

  it(`Node-RED ${nodeRedVersion} registers every node set of the installed package, enabled and without error`, async () => {
    const settings = JSON.parse(await get(port, '/settings', 'application/json')) as {
      version: string;
    };
    should(settings.version.replace(/-git$/, '')).equal(nodeRedVersion);
    const module = JSON.parse(await get(port, `/nodes/${pkg.name}`, 'application/json')) as {
      version: string;
      path: string;
    };
    should(module.version).equal(pkg.version);
    should(fs.realpathSync(module.path)).equal(fs.realpathSync(installedDir));
    const sets = (JSON.parse(await get(port, '/nodes', 'application/json')) as NodeSet[]).filter(
      (s) => s.module === pkg.name,
    );
    should(sets.flatMap((s) => s.types).sort()).eql([...TYPES].sort());
    for (const s of sets) {
      should(s).containEql({
        id: `${pkg.name}/${s.types[0]}`,
        enabled: true,
        version: pkg.version,
      });
      should(s.err === undefined).be.true(`${s.id}: ${JSON.stringify(s.err)}`);
    }
  });

  it("serves each node's editor template, help, icon and messages, the example flows and the editor's resources", async () => {
    const html = await get(port, '/nodes', 'text/html');
    should(
      TYPES.flatMap((t) =>
        [`data-template-name="${t}"`, `data-help-name="${t}"`].filter((a) => !html.includes(a)),
      ),
    ).eql([], 'missing from the editor HTML that Node-RED serves');
    const icons = JSON.parse(await get(port, '/icons', 'application/json')) as Record<
      string,
      string[]
    >;
    const shipped = repoFiles('nodes')
      .filter((f) => /\/icons\//.test(f))
      .map((f) => path.basename(f));
    should([...(icons[pkg.name] ?? [])].sort()).eql(shipped.sort());
    const messages = JSON.parse(
      await get(port, '/nodes/messages?lng=en-US', 'application/json'),
    ) as Record<string, Record<string, unknown>>;
    for (const t of TYPES) {
      should(Object.keys(messages[`${pkg.name}/${t}`] ?? {}).length).be.above(
        0,
        `messages of ${t}`,
      );
    }
    const examples = JSON.parse(
      await get(port, `/library/examples/flows/${pkg.name}`, 'application/json'),
    ) as { fn: string }[];
    // Flows have `fn`; a folder would be listed as `{d}`.
    should(
      examples
        .filter((e) => e.fn !== undefined)
        .map((e) => e.fn)
        .sort(),
    ).eql(
      repoFiles('examples')
        .filter((f) => f.endsWith('.json'))
        .map((f) => path.basename(f, '.json'))
        .sort(),
    );
    // The scripts and styles of the editor's sidebar tab, from the package's resources/,
    // at the paths that the .html files load them from.
    for (const f of repoFiles('resources')) {
      const url = `/resources/${pkg.name}/${path.basename(f)}`;
      should(html.includes(`src="${url.slice(1)}"`) || f.endsWith('.css')).be.true(url);
      should(await get(port, url, '*/*')).equal(fs.readFileSync(path.join(ROOT, f), 'utf8'));
    }
  });

  it('logs no load error', () => {
    const bad = log
      .split('\n')
      .filter(
        (l) =>
          /\[error\]|Cannot find module|Failed to register/.test(l) ||
          (/\[warn\]/.test(l) && (l.includes(pkg.name) || TYPES.some((t) => l.includes(t)))),
      );
    should(bad).eql([], `Node-RED's log:\n${log}`);
  });
});
