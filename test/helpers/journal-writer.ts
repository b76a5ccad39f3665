/**
 * A child process for the journal's kill -9 test: a Site journaling into the directory given
 * as argv[2] gets a command every turn of the event loop, and each command already flushed is
 * answered; after each turn it prints the number of commands it knows are written
 * (`written <n>`). The parent kills it by its pid at some point and loads the journal.
 */
import { JournalStore } from '../../src/journal';
import { Site } from '../../src/site';

const dir = process.argv[2];
if (!dir) throw new Error('usage: journal-writer <dir>');
const store = new JournalStore(dir, { compactAfterBytes: 64 * 1024 });
const site = new Site({ siteId: 'kill', store, config: { maxFinishedCommands: 50 } });
site.adapterRegistry.register('ev', { protocol: 'test', dispatch: () => undefined });
let i = 0;
const T = Date.now() + 3600_000;
function step() {
  const n = i++;
  site.submit({
    id: `k-${n}`,
    assetId: 'ev',
    type: 'SET_CHARGE_RATE',
    valueKw: (n % 50) + 1,
    scheduledAt: T + n * 1000,
  });
  if (n > 0) {
    site.engine.markDispatched(`k-${n - 1}`);
    site.engine.handleResponse(`k-${n - 1}`, true);
  }
  // This runs after the journal's flush of the turn above (queued before it).
  setImmediate(() => {
    process.stdout.write(`written ${n}\n`);
    if (i < 200_000) step();
  });
}
step();
