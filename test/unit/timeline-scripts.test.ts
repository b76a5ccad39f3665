/**
 * The timeline tab's two browser scripts in either order: Node-RED runs a module's
 * `<script src>` files as they finish loading, so resources/qe-timeline.js may run before
 * resources/qe-timeline-model.js. Both run here as the browser runs them (plain scripts in
 * one global context, `window` the global); the tab's start is seen by its first read of
 * `window.RED` (left undefined, so it stops right there, before any DOM).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import should from 'should';

const resources = path.join(__dirname, '../../resources');
const script = (name: string) =>
  new vm.Script(readFileSync(path.join(resources, name), 'utf8'), { filename: name });

/** A browser-like global whose reads of `RED` are counted: a read is the tab starting. */
function page(): { context: vm.Context; starts: () => number } {
  let reads = 0;
  const g: Record<string, unknown> = {};
  Object.defineProperty(g, 'RED', {
    get: () => {
      reads++;
      return undefined;
    },
  });
  g.window = g;
  const context = vm.createContext(g);
  return { context, starts: () => reads };
}

describe('timeline tab scripts, in the order Node-RED happens to run them', () => {
  it('model first, then the tab: the tab starts at once', () => {
    const { context, starts } = page();
    script('qe-timeline-model.js').runInContext(context);
    should(starts()).equal(0);
    script('qe-timeline.js').runInContext(context);
    should(starts()).equal(1);
    should(context.QeTimelineOnModel).be.undefined();
  });

  it('the tab first: it waits, and the model starts it when it comes', () => {
    const { context, starts } = page();
    script('qe-timeline.js').runInContext(context);
    should(starts()).equal(0);
    should(context.QeTimelineOnModel).be.a.Function();
    script('qe-timeline-model.js').runInContext(context);
    should(starts()).equal(1);
    should(context.QeTimelineOnModel).be.undefined();
    should(context.QeTimelineModel).be.an.Object();
  });
});
