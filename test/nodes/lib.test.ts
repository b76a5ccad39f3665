/**
 * Units of nodes/lib without a runtime: Status (throttled, nothing after close), the node
 * errors (message, status, the text Catch nodes get), a config node's failure reported once
 * the flows have started. A stand-in node and RED (EventEmitters), no timing asserted: a
 * throttle of 0 ms and a turn of the event loop stand for "later".
 */
import { EventEmitter } from 'node:events';
import type { Node, NodeAPI, NodeStatus } from 'node-red';
import should from 'should';
import { type ConfigNode, ownUsers } from '../../nodes/lib/config-node';
import { NodeConfigError, NodeInputError } from '../../nodes/lib/errors';
import { Status } from '../../nodes/lib/status';
import { sleep } from '../helpers/wait';

/** A node that records its statuses and errors, and closes on `close()`. */
function fakeNode(type = 'qe-test') {
  const emitter = new EventEmitter();
  const statuses: NodeStatus[] = [];
  const errors: { text: unknown; msg: unknown }[] = [];
  const node = Object.assign(emitter, {
    id: 'n1',
    type,
    status: (s: NodeStatus) => statuses.push(s),
    error: (text: unknown, msg?: unknown) => errors.push({ text, msg }),
  });
  return {
    node: node as unknown as Node,
    statuses,
    errors,
    close: () => emitter.emit('close', false, () => {}),
  };
}

function fakeRED(): { RED: NodeAPI; events: EventEmitter } {
  const events = new EventEmitter();
  return { RED: { events } as unknown as NodeAPI, events };
}

describe('nodes/lib', () => {
  describe('Status', () => {
    it('refresh renders once for a burst of calls, with the state at render time', async () => {
      const { node, statuses } = fakeNode();
      let n = 0;
      const status = new Status(node, () => ({ fill: 'green', shape: 'dot', text: `n=${n}` }), 0);
      for (n = 1; n <= 5; n++) status.refresh();
      should(statuses).have.length(0);
      await sleep(0);
      should(statuses).eql([{ fill: 'green', shape: 'dot', text: 'n=6' }]);
      status.refresh();
      await sleep(0);
      should(statuses).have.length(2);
    });

    it('update renders now; show and set show what they are given; a null render shows nothing', () => {
      const { node, statuses } = fakeNode();
      const status = new Status(node);
      status.update();
      should(statuses).have.length(0);
      status.render = () => ({ fill: 'grey', shape: 'ring', text: 'idle' });
      status.update();
      status.show('red', 'ring', 'down');
      should(statuses).eql([
        { fill: 'grey', shape: 'ring', text: 'idle' },
        { fill: 'red', shape: 'ring', text: 'down' },
      ]);
    });

    it('after close: the pending refresh is cancelled and nothing more shows', async () => {
      const { node, statuses, close } = fakeNode();
      const status = new Status(node, () => ({ fill: 'green', shape: 'dot', text: 'x' }), 0);
      status.refresh();
      close();
      should(status.closed).be.true();
      await sleep(0);
      status.update();
      status.show('red', 'ring', 'late');
      status.refresh();
      await sleep(0);
      should(statuses).have.length(0);
    });
  });

  describe('node errors', () => {
    it('NodeConfigError: prefixed with the node type, unless the text names a node; the misconfigured ring', () => {
      const e = new NodeConfigError('qe-ocpp', 'add at least one charger');
      should(e.message).equal('qe-ocpp: add at least one charger');
      should(e.kind).equal('config');
      should(e.status).eql({ fill: 'red', shape: 'ring', text: 'qe-ocpp.status.misconfigured' });
      // What Catch nodes get (err.toString()) keeps the form it had with plain Errors.
      should(e.toString()).equal('Error: qe-ocpp: add at least one charger');
      should(e).be.instanceOf(Error);
      const passed = new NodeConfigError('qe-ocpp', 'qe-coordinator s1: limits: bad');
      should(passed.message).equal('qe-coordinator s1: limits: bad');
      should(NodeConfigError.from('qe-adapter', new Error('b1 is served')).message).equal(
        'qe-adapter: b1 is served',
      );
      should(NodeConfigError.from('qe-adapter', e)).equal(e);
    });

    it('NodeInputError: no status of its own unless given; from() names where', () => {
      const e = NodeInputError.from(
        'qe-limit',
        new Error('importKw must be >= 0'),
        'msg.payload[1]',
      );
      should(e.message).equal('qe-limit: msg.payload[1]: importKw must be >= 0');
      should(e.kind).equal('input');
      should(e.status).be.null();
      const r = new NodeInputError('qe-schedule', 'bad', { fill: 'red', shape: 'dot', text: 'k' });
      should(r.status).eql({ fill: 'red', shape: 'dot', text: 'k' });
    });
  });

  describe('config nodes (ownUsers)', () => {
    it('a failure before the flows have started is reported once they have, the last one, once', () => {
      const { RED, events } = fakeRED();
      const { node, errors } = fakeNode('qe-ocpp-server');
      const config = node as unknown as ConfigNode;
      const fail = ownUsers(RED, config);
      fail('qe-ocpp-server: first');
      fail('qe-ocpp-server: second');
      should(config.failure).equal('qe-ocpp-server: second');
      should(errors).have.length(0);
      events.emit('flows:started');
      events.emit('flows:started');
      should(errors).eql([{ text: 'qe-ocpp-server: second', msg: {} }]);
    });

    it('a failure after the flows have started is reported at once; users register and deregister', () => {
      const { RED, events } = fakeRED();
      const { node, errors } = fakeNode('qe-modbus-connection');
      const config = node as unknown as ConfigNode;
      const fail = ownUsers(RED, config);
      events.emit('flows:started');
      fail('qe-modbus-connection: gone', { topic: 't' });
      should(errors).eql([{ text: 'qe-modbus-connection: gone', msg: { topic: 't' } }]);
      const user = fakeNode('qe-modbus').node;
      config.register(user);
      should(Object.keys(config.users)).eql(['n1']);
      config.deregister(user);
      should(config.users).eql({});
    });

    it('a closed config node reports nothing at the next start', () => {
      const { RED, events } = fakeRED();
      const { node, errors, close } = fakeNode('qe-ocpp-server');
      const fail = ownUsers(RED, node as unknown as ConfigNode);
      fail('qe-ocpp-server: bad port');
      close();
      events.emit('flows:started');
      should(errors).have.length(0);
    });
  });
});
