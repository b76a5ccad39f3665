/**
 * Who may connect to the central system: a charger's WebSocket handshake checked against the
 * path, the OCPP versions served, the known identities and, with a security profile, the
 * HTTP Basic password (compared in constant time). Pure: it says why a handshake is refused
 * (an HTTP status and a message), or null to accept it; central-system.ts reports and answers.
 */

import { timingSafeEqual } from 'node:crypto';
import { type KnownCharger, normalisePath, type ResolvedOptions } from './central-system-options';

/** What ocpp-rpc knows of a handshake when it asks whether to accept it. */
export interface Handshake {
  identity: string;
  endpoint: string;
  password: Buffer | undefined;
  remoteAddress: string | undefined;
  protocols: Set<string>;
}

/** Why `handshake` is refused (HTTP status and message), or null: accept it. */
export function refusalOf(
  handshake: Handshake,
  options: ResolvedOptions,
  known: ReadonlyMap<string, KnownCharger>,
): { code: number; message: string } | null {
  const { identity } = handshake;
  if (normalisePath(handshake.endpoint) !== options.path) {
    return {
      code: 404,
      message: `unknown path ${handshake.endpoint}: chargers connect to ${options.path}/<identity>`,
    };
  }
  const offered = [...(handshake.protocols ?? [])];
  if (!offered.some((p) => (options.protocols as string[]).includes(p))) {
    return {
      code: 400,
      message: `charger ${identity} offers no supported OCPP version (offered: ${offered.join(', ') || 'none'}; served: ${options.protocols.join(', ')})`,
    };
  }
  const charger = known.get(identity);
  const basic = options.security !== 'none';
  if (!charger && (!options.allowUnknown || basic)) {
    return { code: 404, message: `unknown charger identity ${JSON.stringify(identity)}` };
  }
  if (basic) {
    const expected = charger?.password;
    const given = handshake.password;
    if (!expected || !given || !sameSecret(given, Buffer.from(expected, 'utf8'))) {
      return { code: 401, message: `charger ${identity}: wrong or missing password` };
    }
  }
  return null;
}

function sameSecret(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
