/**
 * The register maps for the qe-modbus edit dialog, served by the runtime so that the editor
 * holds no copy of them and checks a map with the core's own validator (resolveMap, which
 * calls validateRegisterMap), not a second, lighter one:
 *
 *   GET  <admin>/qe-modbus/maps           {maps: {<name>: map}, profiles: [<name>]}: the
 *                                         shipped maps, and the SunSpec profiles that need
 *                                         a base address (src/adapters/modbus/maps.ts MAPS)
 *   POST <admin>/qe-modbus/maps/validate  body {map}: a map object, its JSON text, or a
 *                                         SunSpec profile ({profile, baseAddress, ...});
 *                                         200 {valid: true, map} (the map as resolved) or
 *                                         200 {valid: false, errors: [{path, message}]},
 *                                         400 {error} for a request without `map`.
 *
 * Both need the permission `qe-modbus.read` (an admin user with `read` has it). Registered
 * once per admin app, when the qe-modbus type is registered.
 */
import type { NodeAPI } from 'node-red';
import { MAPS, RegisterMapError, resolveMap } from '../..';

/** The admin apps that already have the routes (one per runtime). */
const served = new WeakSet<object>();

export interface MapProblem {
  /** The field of the map, dotted (`setpoint.unit`, `telemetry.soc.address`); '' for the whole. */
  path: string;
  message: string;
}

export type MapVerdict = { valid: true; map: unknown } | { valid: false; errors: MapProblem[] };

/** Checks `input` (a map, its JSON text, or a SunSpec profile) with the core's validator. */
export function checkMap(input: unknown): MapVerdict {
  let map = input;
  if (typeof input === 'string') {
    try {
      map = JSON.parse(input);
    } catch (err) {
      return {
        valid: false,
        errors: [{ path: '', message: `not valid JSON: ${(err as Error).message}` }],
      };
    }
  }
  if (typeof map === 'string' || !map || typeof map !== 'object' || Array.isArray(map)) {
    return { valid: false, errors: [{ path: '', message: 'a register map must be an object' }] };
  }
  try {
    return { valid: true, map: resolveMap(map as never) };
  } catch (err) {
    const path = err instanceof RegisterMapError ? err.field : '';
    return { valid: false, errors: [{ path, message: (err as Error).message }] };
  }
}

/** The shipped maps by name, and the names of the profiles that need a base address. */
export function shippedMaps(): { maps: Record<string, unknown>; profiles: string[] } {
  const maps: Record<string, unknown> = {};
  const profiles: string[] = [];
  for (const [name, entry] of Object.entries(MAPS)) {
    if (typeof entry === 'function') profiles.push(name);
    else maps[name] = structuredClone(entry);
  }
  return { maps, profiles };
}

/** Adds the two routes to the runtime's admin app (once). */
export function serveModbusMaps(RED: NodeAPI): void {
  const app = RED.httpAdmin as unknown as object;
  if (served.has(app)) return;
  served.add(app);
  const permission = RED.auth.needsPermission('qe-modbus.read');
  RED.httpAdmin.get('/qe-modbus/maps', permission, (_req, res) => {
    res.json(shippedMaps());
  });
  RED.httpAdmin.post('/qe-modbus/maps/validate', permission, (req, res) => {
    const body = req.body as Record<string, unknown> | undefined;
    if (!body || typeof body !== 'object' || !('map' in body)) {
      res.status(400).json({
        error: 'qe-modbus maps/validate: send a JSON body {"map": <the map, or its JSON text>}',
      });
      return;
    }
    res.json(checkMap(body.map));
  });
}
