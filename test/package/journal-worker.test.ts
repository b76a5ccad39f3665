import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import should from 'should';

// The journal's snapshot worker as users run it: from the build (dist/journal-worker.js),
// not through tsx as the unit tests start it. A plain `node` loads dist/journal, journals a
// few entries, compacts them in the worker thread and loads the result in a new store.
const root = path.join(__dirname, '../..');

describe('journal snapshot worker from the build', () => {
  let dir: string;
  before(() => {
    if (!existsSync(path.join(root, 'dist/journal-worker.js'))) {
      throw new Error('dist/journal-worker.js is missing: run `npm run build` (npm test does)');
    }
    dir = mkdtempSync(path.join(os.tmpdir(), 'qe-journal-dist-'));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('compacts in a worker thread started from dist/ and loads what it wrote', () => {
    const script = `
      const { JournalStore } = require(${JSON.stringify(path.join(root, 'dist/journal'))});
      const dir = process.argv[1];
      const store = new JournalStore(dir);
      store.load();
      store.journal({ key: 'o:c1', value: () => 'disp-1' });
      store.journal({ key: 'o:c2', value: () => 'disp-2' });
      store.flush();
      store.compact().then(() => {
        const doc = new JournalStore(dir).load();
        console.log(JSON.stringify({ owners: doc.owners, workers: store.stats.workerSnapshots,
          files: require('node:fs').readdirSync(dir).sort() }));
      }, (err) => { console.error(err.message); process.exit(1); });
    `;
    const out = execFileSync(process.execPath, ['-e', script, dir], {
      cwd: root,
      encoding: 'utf8',
      timeout: 60_000,
    });
    const res = JSON.parse(out.trim().split('\n').pop() as string);
    should(res.owners).eql({ c1: 'disp-1', c2: 'disp-2' });
    should(res.workers).equal(1);
    should(res.files.some((f: string) => /^snapshot-\d+\.json$/.test(f))).be.true();
  });
});
