import { readPlan, planOfConversion } from '../src/plans';
import { Site } from '../src/site';
import { splitSchedule } from './lib';
const cpu = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };
function t<T>(name: string, f: () => T): T { const c = cpu(); const r = f(); console.log('  ', name, (cpu() - c).toFixed(1), 'ms'); return r; }
async function main() {
  const start = Math.ceil(Date.now() / 900_000) * 900_000 + 3_600_000;
  const { text, assetMap } = splitSchedule(10000, start);
  const { text: text2 } = splitSchedule(10000, start + 900_000);
  for (let i = 0; i < 3; i++) {
    const site = new Site({ siteId: 'x', onError: () => {} });
    const e = site.engine as any;
    for (const [tx, name] of [[text, 'first'], [text2, 'replace']] as const) {
      console.log(name);
      const conv = await site.receiveScheduleAsync(tx, { assetMap });
      const plan = readPlan(planOfConversion(conv));
      const id = plan.scheduleId;
      t('isRedelivery', () => e.book.isRedelivery(plan, e.tracked.values()));
      const now = Date.now();
      let s = Infinity;
      const assets = t('start+assets', () => { for (const c of plan.cursors) if (c.next < c.end) s = Math.min(s, plan.timeOf(c.next)); return plan.cursors.filter((c) => c.next < c.end).map((c) => c.assetId); });
      t('rowsFrom', () => e.book.rowsFrom(assets, id, s));
      t('supersedeAll', () => e.supersedeAll(assets, id, s, now));
      t('book.add', () => e.book.add(plan));
      t('announce', () => e.book.announce(plan));
    }
    await site.stop();
  }
}
main();
