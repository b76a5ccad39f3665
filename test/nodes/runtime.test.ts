import path from 'node:path';
import should from 'should';
import {
  coreNode,
  helper,
  nodeRedMajor,
  nodeRedVersion,
  runtimePath,
  runtimeRequire,
} from './runtime';

// Smoke test of the runtime that the node tests run on (see ./runtime.ts): a message goes
// through Node-RED's own change node, loaded from that runtime, and the version is the one
// that the CI pass expects (QE_EXPECT_NODE_RED_MAJOR, set by .ci/run).
//
// Hooks take mocha's `done` in a block-bodied arrow (or `function (done) {...}`): the helper's
// startServer/stopServer/unload return promises too, and a hook that both takes `done` and
// returns a promise (`(done) => helper.startServer(done)`) fails with "overspecified".
describe('Node-RED test runtime', () => {
  const changeNode = coreNode('function/15-change.js');

  before((done) => {
    console.log(
      `      Node-RED ${nodeRedVersion} on Node ${process.version} (${path.relative(process.cwd(), runtimePath)})`,
    );
    helper.startServer(done);
  });

  afterEach((done) => {
    helper.unload().then(() => done(), done);
  });

  after((done) => {
    helper.stopServer(done);
  });

  it('is the Node-RED major version that this pass expects', () => {
    const expected = process.env.QE_EXPECT_NODE_RED_MAJOR;
    if (expected) {
      should(nodeRedMajor).equal(Number(expected), `Node-RED ${nodeRedVersion} is running`);
    } else {
      should(nodeRedMajor).be.aboveOrEqual(4);
    }
  });

  it('passes a message through a core change node of that runtime', (done) => {
    const flow = [
      {
        id: 'c1',
        type: 'change',
        name: 'set payload',
        rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'changed', tot: 'str' }],
        wires: [['out']],
      },
      { id: 'out', type: 'helper' },
    ];
    helper.load(changeNode, flow, () => {
      try {
        const c1 = helper.getNode('c1');
        // The node object comes from the chosen runtime, not from the node-red 4 that the
        // helper loads by itself when it is first required.
        const NodeClass = runtimeRequire('@node-red/runtime/lib/nodes/Node');
        should(c1).be.instanceOf(NodeClass);
        const out = helper.getNode('out');
        out.on('input', (msg: Record<string, unknown>) => {
          try {
            should(msg.payload).equal('changed');
            should(msg.topic).equal('t1');
            done();
          } catch (err) {
            done(err);
          }
        });
        c1.receive({ payload: 'original', topic: 't1' });
      } catch (err) {
        done(err);
      }
    });
  });
});
