/**
 * The flow library's scorecard, offline (scripts/scorecard.ts): node-red-dev's checks under
 * their ids (P.., N.., D..) and ours (QE..). The package passes it, and the checker fails a
 * package that breaks any of its rules (temp copies of the package, each broken in one way).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import should from 'should';
import { type CheckResult, checkPackage } from '../../scripts/scorecard';

const root = path.join(__dirname, '../..');
const script = path.join(root, 'scripts/scorecard.ts');

/** `node --import tsx scripts/scorecard.ts [dir]`, as npm scripts and CI run it. */
function runScorecard(dir?: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...(dir ? [dir] : [])], {
    cwd: root,
    encoding: 'utf8',
    timeout: 30000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const failures = (results: CheckResult[]): string[] =>
  results.filter((r) => !r.ok).map((r) => `${r.id} ${r.name}: ${r.detail}`);

/** Exactly these failures, in this order, each matching its pattern. */
function shouldFailWith(results: CheckResult[], patterns: RegExp[]): void {
  const got = failures(results);
  const message = `failures:\n  ${got.join('\n  ') || '(none)'}`;
  should(got.length).equal(patterns.length, message);
  patterns.forEach((re, i) => {
    should(re.test(got[i] ?? '')).be.true(`${re} does not match failure ${i}; ${message}`);
  });
}

describe('flow library scorecard (scripts/scorecard.ts)', () => {
  before(() => {
    if (!fs.existsSync(path.join(root, 'nodes/qe-dispatcher/qe-dispatcher.js'))) {
      throw new Error(
        'nodes/*/*.js are missing: run `npm run build` (npm test does) before the scorecard',
      );
    }
  });

  it('passes on this package (exit 0, a summary)', function () {
    this.timeout(30000);
    const r = runScorecard();
    should(r.status).equal(0, `scorecard failed:\n${r.stderr}${r.stdout}`);
    should(r.stdout).match(/all \d+ checks passed/);
    should(r.stdout).match(/not checked offline: P02 .*, P08 .*, D03 /);
  });

  it("uses node-red-dev's ids for its checks and QE.. for ours, each id with one meaning", () => {
    const results = checkPackage(root);
    const ids = new Set(results.map((r) => r.id));
    should([...ids].sort()).eql([
      ...['D01', 'D02', 'D03', 'N01', 'N02'],
      ...['P01', 'P02', 'P03', 'P04', 'P05', 'P06', 'P07', 'P08'],
      ...['QE01', 'QE02', 'QE03', 'QE04', 'QE05', 'QE06', 'QE07', 'QE08'],
    ]);
    // Offline, the checks that need the network are named as not made, never as passed.
    const skipped = results.filter((r) => r.skipped).map((r) => r.id);
    should(skipped).eql(['P02', 'P08', 'D03']);
    // One name a package-level id; per-node ids carry the node type.
    should(
      results.find((r) => r.id === 'N02' && r.name === 'qe-dispatcher: example')?.ok,
    ).be.true();
    should(results.some((r) => r.id === 'N02' && r.name.startsWith('qe-coordinator'))).be.false();
  });

  describe('on a broken copy of the package', () => {
    let tmp: string;
    let copy: string;

    beforeEach(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-scorecard-'));
      copy = path.join(tmp, 'pkg');
      fs.mkdirSync(copy);
      for (const f of ['package.json', 'package-lock.json', 'LICENSE']) {
        fs.copyFileSync(path.join(root, f), path.join(copy, f));
      }
      for (const d of ['nodes', 'examples']) {
        fs.cpSync(path.join(root, d), path.join(copy, d), {
          recursive: true,
          filter: (src) => !src.endsWith('.ts') && !src.endsWith('.map'),
        });
      }
    });

    afterEach(() => {
      fs.rmSync(tmp, { recursive: true, force: true });
    });

    const editJson = (file: string, edit: (json: Record<string, unknown>) => void): void => {
      const p = path.join(copy, file);
      const json = JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>;
      edit(json);
      fs.writeFileSync(p, JSON.stringify(json, null, 2));
    };
    const editText = (file: string, edit: (text: string) => string): void => {
      const p = path.join(copy, file);
      const before = fs.readFileSync(p, 'utf8');
      const after = edit(before);
      should(after).not.equal(before, `the edit of ${file} changed nothing`);
      fs.writeFileSync(p, after);
    };
    const html = 'nodes/qe-dispatcher/qe-dispatcher.html';

    it('the unbroken copy passes', () => {
      should(failures(checkPackage(copy))).eql([]);
    });

    it('QE01 fails without a LICENSE file', () => {
      fs.rmSync(path.join(copy, 'LICENSE'));
      shouldFailWith(checkPackage(copy), [/^QE01 licence file: no \(non-empty\) LICENSE file/]);
    });

    it('P01, P03, P04, P05, P07 fail without a license, repository and bugs, a scope, the keyword, engines', () => {
      editJson('package.json', (pkg) => {
        delete pkg.license;
        delete pkg.repository;
        delete pkg.bugs;
        pkg.keywords = ['energy'];
        delete pkg.engines;
        pkg.name = 'node-red-coordinator';
      });
      shouldFailWith(checkPackage(copy), [
        /^P01 licence: package.json has no "license"/,
        /^P03 repository or bugs: package.json has neither/,
        /^P04 scoped name: .*not scoped.* node-red-contrib-/,
        /^P05 keyword node-red: /,
        /^P07 engines\.node: /,
      ]);
    });

    it('P01 fails when the license names a file that is not there', () => {
      editJson('package.json', (pkg) => {
        pkg.license = 'SEE LICENSE IN TERMS.txt';
      });
      shouldFailWith(checkPackage(copy), [/^P01 licence: .*TERMS\.txt is not there/]);
      fs.writeFileSync(path.join(copy, 'TERMS.txt'), 'terms');
      should(failures(checkPackage(copy))).eql([]);
    });

    it('P03 passes with bugs alone (a url or an email), as node-red-dev does', () => {
      editJson('package.json', (pkg) => {
        delete pkg.repository;
        pkg.bugs = { email: 'bugs@example.org' };
      });
      should(failures(checkPackage(copy))).eql([]);
    });

    it('P06 fails without node-red.version', () => {
      editJson('package.json', (pkg) => {
        delete (pkg['node-red'] as Record<string, unknown>).version;
      });
      shouldFailWith(checkPackage(copy), [/^P06 node-red\.version: /]);
    });

    it('D01 fails with 7 runtime dependencies', () => {
      editJson('package.json', (pkg) => {
        const deps = pkg.dependencies as Record<string, string>;
        for (let i = deps ? Object.keys(deps).length : 0; i < 7; i++) deps[`dep-${i}`] = '^1.0.0';
      });
      shouldFailWith(checkPackage(copy), [/^D01 dependencies: 7 runtime dependencies/]);
    });

    it('D02 fails on agent-base < 6 in the runtime tree of the lockfile, not in devDependencies', () => {
      const addToLock = (entry: Record<string, unknown>) =>
        editJson('package-lock.json', (lock) => {
          const packages = lock.packages as Record<string, unknown>;
          packages['node_modules/ocpp-rpc/node_modules/agent-base'] = entry;
        });
      addToLock({ version: '6.0.0-beta.1', dev: true });
      should(failures(checkPackage(copy))).eql([]);
      addToLock({ version: '5.1.1' });
      shouldFailWith(checkPackage(copy), [
        /^D02 bad packages: agent-base@5\.1\.1 in the runtime dependency tree \(package-lock\.json\)/,
      ]);
      addToLock({ version: '6.0.2' });
      should(failures(checkPackage(copy))).eql([]);
    });

    it('D02 is not checked (skipped, not passed) without a lockfile', () => {
      fs.rmSync(path.join(copy, 'package-lock.json'));
      const d02 = checkPackage(copy).find((r) => r.id === 'D02');
      should(d02).have.properties({ ok: true, skipped: true });
      should(d02?.detail).match(/no package-lock\.json/);
    });

    it("fails when a node's help is removed", () => {
      editText(html, (t) => t.replace('data-help-name="qe-dispatcher"', 'data-x="qe-dispatcher"'));
      shouldFailWith(checkPackage(copy), [/^QE05 qe-dispatcher: help: no help/]);
    });

    it("fails when a node's help is empty", () => {
      editText(html, (t) =>
        t.replace(
          /(<script type="text\/html" data-help-name="qe-dispatcher">)[\s\S]*?<\/script>/,
          '$1\n</script>',
        ),
      );
      shouldFailWith(checkPackage(copy), [/^QE05 qe-dispatcher: help: /]);
    });

    it('fails when the type given to registerType is not a literal', () => {
      editText(html, (t) =>
        t.replace(
          "RED.nodes.registerType('qe-dispatcher', {",
          "const T = 'qe-dispatcher';\n  RED.nodes.registerType(T, {",
        ),
      );
      shouldFailWith(checkPackage(copy), [/^QE04 qe-dispatcher: registerType: .*literal/]);
    });

    it('fails when registerType is not inside <script type="text/javascript">', () => {
      editText(html, (t) => t.replace('<script type="text/javascript">', '<script type="module">'));
      shouldFailWith(checkPackage(copy), [
        /^QE04 qe-dispatcher: registerType: .*no <script type="text\/javascript">/,
      ]);
    });

    it('fails when a node is not built (.js missing) or its .html is missing', () => {
      fs.rmSync(path.join(copy, 'nodes/qe-dispatcher/qe-dispatcher.js'));
      fs.rmSync(path.join(copy, 'nodes/qe-schedule/qe-schedule.html'));
      shouldFailWith(checkPackage(copy), [
        /^QE03 qe-schedule: files: .*qe-schedule\.html is missing/,
        /^QE03 qe-dispatcher: files: .*qe-dispatcher\.js is missing .*npm run build/,
      ]);
    });

    it('fails without an en-US locale, or one without the type section', () => {
      fs.rmSync(path.join(copy, 'nodes/qe-dispatcher/locales/en-US/qe-dispatcher.json'));
      fs.writeFileSync(path.join(copy, 'nodes/qe-events/locales/en-US/qe-events.json'), '{}');
      shouldFailWith(checkPackage(copy), [
        /^QE06 qe-dispatcher: en-US locale: no en-US locale/,
        /^QE06 qe-events: en-US locale: .*has no "qe-events" section/,
      ]);
    });

    it("fails when a node's icon file is missing", () => {
      fs.rmSync(path.join(copy, 'nodes/qe-dispatcher/icons/qe-dispatcher.svg'));
      shouldFailWith(checkPackage(copy), [/^QE07 qe-dispatcher: icon: icon qe-dispatcher\.svg/]);
    });

    it('N02 fails when no example uses a (non-config) node type, not for config nodes', () => {
      const dir = path.join(copy, 'examples');
      // The flows.
      for (const f of fs.readdirSync(dir).filter((x) => x.endsWith('.json'))) {
        const flow = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { type: string }[];
        // Drop the events node and the OCPP server (a config node) from every example.
        const kept = flow.filter((n) => n.type !== 'qe-events' && n.type !== 'qe-ocpp-server');
        fs.writeFileSync(path.join(dir, f), JSON.stringify(kept));
      }
      should(failures(checkPackage(copy))).eql([
        'N02 qe-events: example: no flow under examples/ uses qe-events: add one that does',
      ]);
    });

    it('N02 reads examples in sub-folders of examples/ too, as node-red-dev does', () => {
      const dir = path.join(copy, 'examples');
      const sub = path.join(dir, 'more');
      fs.mkdirSync(sub);
      for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.json'))) {
        fs.renameSync(path.join(dir, f), path.join(sub, f));
      }
      should(failures(checkPackage(copy))).eql([]);
      should(checkPackage(copy).filter((r) => r.id === 'QE08').length).be.above(1);
    });

    it('N01 fails for a node type registered under the name of a core node', () => {
      editJson('package.json', (pkg) => {
        const nr = pkg['node-red'] as { nodes: Record<string, string> };
        nr.nodes = { ...nr.nodes, debug: nr.nodes['qe-dispatcher'] as string };
      });
      const failed = failures(checkPackage(copy));
      should(
        failed.some((f) => /^N01 debug: unique name: .*name of a Node-RED core node/.test(f)),
      ).be.true(failed.join('\n'));
    });

    it('QE08 fails on an example that is not a flow export', () => {
      fs.writeFileSync(path.join(copy, 'examples/06 broken.json'), '{"not": "a flow"}');
      shouldFailWith(checkPackage(copy), [/^QE08 example 06 broken\.json: not a flow export/]);
    });

    it('the command line exits 1 and lists what failed', function () {
      this.timeout(30000);
      fs.rmSync(path.join(copy, 'LICENSE'));
      editJson('package.json', (pkg) => {
        pkg.dependencies = Object.fromEntries(
          ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((n) => [n, '1']),
        );
      });
      const r = runScorecard(copy);
      should(r.status).equal(1);
      should(r.stderr).match(/2 of \d+ checks failed/);
      should(r.stderr).match(/FAIL QE01 licence file: /);
      should(r.stderr).match(
        /FAIL D01 dependencies: 7 runtime dependencies \(a, b, c, d, e, f, g\)/,
      );
      should(r.stderr).match(/not checked offline: P02 /);
    });
  });
});
