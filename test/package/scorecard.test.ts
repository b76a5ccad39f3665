/**
 * The flow library's scorecard, offline (scripts/scorecard.ts): the package passes it, and
 * the checker fails a package that breaks any of its rules (temp copies of the package,
 * each broken in one way).
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
  results.filter((r) => !r.ok).map((r) => `${r.name}: ${r.detail}`);

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
  });

  describe('on a broken copy of the package', () => {
    let tmp: string;
    let copy: string;

    beforeEach(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qe-scorecard-'));
      copy = path.join(tmp, 'pkg');
      fs.mkdirSync(copy);
      for (const f of ['package.json', 'LICENSE']) {
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

    it('fails without a LICENSE file', () => {
      fs.rmSync(path.join(copy, 'LICENSE'));
      shouldFailWith(checkPackage(copy), [/^licence: .*no \(non-empty\) LICENSE file/]);
    });

    it('fails without a license, a repository, the keyword, engines or a scope', () => {
      editJson('package.json', (pkg) => {
        delete pkg.license;
        delete pkg.repository;
        pkg.keywords = ['energy'];
        delete pkg.engines;
        pkg.name = 'node-red-coordinator';
      });
      const names = checkPackage(copy)
        .filter((r) => !r.ok)
        .map((r) => r.name);
      should(names).eql([
        'licence',
        'repository',
        'keyword node-red',
        'scoped name',
        'engines.node',
      ]);
    });

    it('fails without node-red.version', () => {
      editJson('package.json', (pkg) => {
        delete (pkg['node-red'] as Record<string, unknown>).version;
      });
      shouldFailWith(checkPackage(copy), [/^node-red\.version: /]);
    });

    it('fails with 7 runtime dependencies', () => {
      editJson('package.json', (pkg) => {
        const deps = pkg.dependencies as Record<string, string>;
        for (let i = deps ? Object.keys(deps).length : 0; i < 7; i++) deps[`dep-${i}`] = '^1.0.0';
      });
      shouldFailWith(checkPackage(copy), [/^dependencies: 7 runtime dependencies/]);
    });

    it("fails when a node's help is removed", () => {
      editText(html, (t) => t.replace('data-help-name="qe-dispatcher"', 'data-x="qe-dispatcher"'));
      shouldFailWith(checkPackage(copy), [/^qe-dispatcher: help: no help/]);
    });

    it("fails when a node's help is empty", () => {
      editText(html, (t) =>
        t.replace(
          /(<script type="text\/html" data-help-name="qe-dispatcher">)[\s\S]*?<\/script>/,
          '$1\n</script>',
        ),
      );
      shouldFailWith(checkPackage(copy), [/^qe-dispatcher: help: /]);
    });

    it('fails when the type given to registerType is not a literal', () => {
      editText(html, (t) =>
        t.replace(
          "RED.nodes.registerType('qe-dispatcher', {",
          "const T = 'qe-dispatcher';\n  RED.nodes.registerType(T, {",
        ),
      );
      shouldFailWith(checkPackage(copy), [/^qe-dispatcher: registerType: .*literal/]);
    });

    it('fails when registerType is not inside <script type="text/javascript">', () => {
      editText(html, (t) => t.replace('<script type="text/javascript">', '<script type="module">'));
      shouldFailWith(checkPackage(copy), [
        /^qe-dispatcher: registerType: .*no <script type="text\/javascript">/,
      ]);
    });

    it('fails when a node is not built (.js missing) or its .html is missing', () => {
      fs.rmSync(path.join(copy, 'nodes/qe-dispatcher/qe-dispatcher.js'));
      fs.rmSync(path.join(copy, 'nodes/qe-schedule/qe-schedule.html'));
      shouldFailWith(checkPackage(copy), [
        /^qe-schedule: files: .*qe-schedule\.html is missing/,
        /^qe-dispatcher: files: .*qe-dispatcher\.js is missing .*npm run build/,
      ]);
    });

    it('fails without an en-US locale, or one without the type section', () => {
      fs.rmSync(path.join(copy, 'nodes/qe-dispatcher/locales/en-US/qe-dispatcher.json'));
      fs.writeFileSync(path.join(copy, 'nodes/qe-events/locales/en-US/qe-events.json'), '{}');
      shouldFailWith(checkPackage(copy), [
        /^qe-dispatcher: en-US locale: no en-US locale/,
        /^qe-events: en-US locale: .*has no "qe-events" section/,
      ]);
    });

    it("fails when a node's icon file is missing", () => {
      fs.rmSync(path.join(copy, 'nodes/qe-dispatcher/icons/qe-dispatcher.svg'));
      shouldFailWith(checkPackage(copy), [/^qe-dispatcher: icon: icon qe-dispatcher\.svg/]);
    });

    it('fails when no example uses a (non-config) node type, not for config nodes', () => {
      const dir = path.join(copy, 'examples');
      for (const f of fs.readdirSync(dir)) {
        const flow = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as { type: string }[];
        // Drop the events node and the OCPP server (a config node) from every example.
        const kept = flow.filter((n) => n.type !== 'qe-events' && n.type !== 'qe-ocpp-server');
        fs.writeFileSync(path.join(dir, f), JSON.stringify(kept));
      }
      should(failures(checkPackage(copy))).eql([
        'qe-events: example: no flow under examples/ uses qe-events: add one that does',
      ]);
    });

    it('fails on an example that is not a flow export', () => {
      fs.writeFileSync(path.join(copy, 'examples/06 broken.json'), '{"not": "a flow"}');
      shouldFailWith(checkPackage(copy), [/^example 06 broken\.json: not a flow export/]);
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
      should(r.stderr).match(/FAIL licence: /);
      should(r.stderr).match(/FAIL dependencies: 7 runtime dependencies \(a, b, c, d, e, f, g\)/);
    });
  });
});
