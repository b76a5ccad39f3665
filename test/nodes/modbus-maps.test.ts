/**
 * The qe-modbus maps endpoint (nodes/lib/modbus-maps.ts) in a real Node-RED: a process
 * (test/helpers/node-red-process.ts, on the runtime that test/nodes/runtime.ts chose) with
 * the package installed and admin users set, asked over HTTP on loopback:
 *
 * - without a token, and with a user whose permissions lack `qe-modbus.read`: 401;
 * - GET qe-modbus/maps: the core's shipped maps (the generic one as MAPS has it) and the
 *   SunSpec profiles that need a base address;
 * - POST qe-modbus/maps/validate: a good map (object or its JSON text) and a SunSpec profile
 *   are valid; a bad one answers the core validator's error with the field's path; text that
 *   is not JSON and a request without `map` are refused clearly.
 */
import path from 'node:path';
import should from 'should';
import { GENERIC_MAP } from '../../src';
import { NodeRedProcess } from '../helpers/node-red-process';
import { nodeRedVersion, runtimePath, runtimeRequire } from './runtime';

const PASSWORD = 'qe-test-password';

describe('nodes: the qe-modbus maps endpoint in a real Node-RED (permission, maps, validate)', function () {
  this.timeout(90000);
  let red: NodeRedProcess | null = null;
  const tokens: Record<string, string> = {};

  before(async function () {
    this.timeout(120000);
    const bcrypt = runtimeRequire('bcryptjs') as { hashSync(s: string, rounds: number): string };
    const hash = bcrypt.hashSync(PASSWORD, 8);
    red = new NodeRedProcess({
      flows: [],
      // The red.js of the runtime in use (Node-RED 4, or 5 in CI's second pass).
      redJs: path.join(path.dirname(runtimePath), '..', 'red.js'),
      settings: {
        adminAuth: {
          type: 'credentials',
          users: [
            { username: 'reader', password: hash, permissions: 'read' },
            { username: 'flows-only', password: hash, permissions: 'flows.read' },
          ],
        },
      },
    });
    await red.start();
    for (const [user, scope] of [
      ['reader', 'read'],
      ['flows-only', 'flows.read'],
    ] as const) {
      const res = await fetch(`${red.base}/auth/token`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          client_id: 'node-red-admin',
          grant_type: 'password',
          scope,
          username: user,
          password: PASSWORD,
        }),
      });
      should(res.status).equal(200, `token for ${user}: ${await res.clone().text()}`);
      tokens[user] = ((await res.json()) as { access_token: string }).access_token;
    }
  });

  after(async function () {
    this.timeout(30000);
    await red?.dispose();
  });

  const get = (user?: string) =>
    fetch(`${red?.base}/qe-modbus/maps`, {
      headers: user ? { Authorization: `Bearer ${tokens[user]}` } : {},
    });
  const validate = (body: unknown, user = 'reader') =>
    fetch(`${red?.base}/qe-modbus/maps/validate`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${tokens[user]}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('runs on the Node-RED of this pass', async () => {
    const res = await fetch(`${red?.base}/settings`, {
      headers: { Authorization: `Bearer ${tokens.reader}` },
    });
    // Node-RED adds "-git" to its version when a .git lies beside the node_modules it is in.
    should(((await res.json()) as { version: string }).version).startWith(nodeRedVersion);
  });

  it('refuses a request without a token, and a user without qe-modbus.read', async () => {
    should((await get()).status).equal(401);
    should((await get('flows-only')).status).equal(401);
    const post = await fetch(`${red?.base}/qe-modbus/maps/validate`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ map: GENERIC_MAP }),
    });
    should(post.status).equal(401);
    should((await validate({ map: GENERIC_MAP }, 'flows-only')).status).equal(401);
  });

  it('GET answers the shipped maps and the profiles that need a base address', async () => {
    const res = await get('reader');
    should(res.status).equal(200);
    const body = (await res.json()) as { maps: Record<string, unknown>; profiles: string[] };
    should(Object.keys(body.maps)).eql(['generic']);
    should(body.maps.generic).eql(JSON.parse(JSON.stringify(GENERIC_MAP)));
    should(body.profiles).eql(['sunspec-124', 'sunspec-704']);
  });

  it('POST validate: a good map, its JSON text and a SunSpec profile are valid', async () => {
    for (const map of [
      GENERIC_MAP,
      JSON.stringify(GENERIC_MAP),
      { profile: 'sunspec-704', baseAddress: 40200 },
    ]) {
      const res = await validate({ map });
      should(res.status).equal(200);
      const body = (await res.json()) as { valid: boolean; map: { setpoint: unknown } };
      should(body.valid).be.true(JSON.stringify(body));
      should(body.map.setpoint).be.an.Object();
    }
  });

  it("POST validate: a bad map answers the core validator's error with the field's path", async () => {
    const bad = { ...GENERIC_MAP, name: 'mine', setpoint: { ...GENERIC_MAP.setpoint, unit: 'MW' } };
    const res = await validate({ map: JSON.stringify(bad) });
    should(res.status).equal(200);
    should(await res.json()).eql({
      valid: false,
      errors: [
        {
          path: 'setpoint.unit',
          message: 'register map mine: setpoint.unit must be W, kW or percent, got "MW"',
        },
      ],
    });
    const far = await validate({
      map: { ...GENERIC_MAP, telemetry: { soc: { address: 70000, type: 'uint16' } } },
    });
    const farBody = (await far.json()) as { valid: boolean; errors: { path: string }[] };
    should(farBody.valid).be.false();
    should(farBody.errors[0]?.path).equal('telemetry.soc.address');
    const profile = (await (
      await validate({ map: { profile: 'sunspec-999', baseAddress: 1 } })
    ).json()) as { errors: { path: string; message: string }[] };
    should(profile.errors[0]).match({ path: 'profile', message: /unknown register map profile/ });
  });

  it('POST validate: text that is not JSON, a non-object, and no `map` are refused clearly', async () => {
    const text = (await (await validate({ map: '{"setpoint": ' })).json()) as {
      valid: boolean;
      errors: { path: string; message: string }[];
    };
    should(text.valid).be.false();
    should(text.errors[0]).match({ path: '', message: /^not valid JSON: / });
    const list = (await (await validate({ map: [1] })).json()) as {
      errors: { message: string }[];
    };
    should(list.errors[0]?.message).equal('a register map must be an object');
    const none = await validate({ nothing: true });
    should(none.status).equal(400);
    should(((await none.json()) as { error: string }).error).match(/send a JSON body \{"map"/);
    // The runtime is still up and answering.
    should((await get('reader')).status).equal(200);
  });
});
