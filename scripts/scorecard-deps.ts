/**
 * The runtime dependency tree of a package, read offline from its lockfile, and the
 * packages in it that are known to break Node-RED: check D02 of scripts/scorecard.ts
 * (node-red-dev's "bad packages", which it reads from the registry instead).
 */
import fs from 'node:fs';
import path from 'node:path';

/**
 * Packages that break Node-RED, as node-red-dev 0.1.6 lists them (its src/badpackages.json):
 * the name, and the first version that is fine.
 */
export const BAD_PACKAGES: Readonly<Record<string, readonly [number, number, number]>> = {
  'agent-base': [6, 0, 0],
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** True if `version` is below `fixed` (a prerelease of `fixed` is below it). */
export function below(version: string, fixed: readonly [number, number, number]): boolean {
  const m = /^v?(\d+)\.(\d+)\.(\d+)(-[^+]+)?/.exec(version.trim());
  if (!m) return false;
  for (let i = 0; i < 3; i++) {
    const v = Number(m[i + 1]);
    if (v !== fixed[i]) return v < (fixed[i] ?? 0);
  }
  return m[4] !== undefined;
}

/**
 * The runtime dependency tree from the lockfile at `root` (npm-shrinkwrap.json or
 * package-lock.json, lockfile version 2 or 3): `name@version` of every package that is not
 * only a devDependency. null when there is no readable lockfile.
 */
export function runtimeTree(root: string): { file: string; packages: string[] } | null {
  for (const file of ['npm-shrinkwrap.json', 'package-lock.json']) {
    let lock: unknown;
    try {
      lock = JSON.parse(fs.readFileSync(path.join(root, file), 'utf8'));
    } catch {
      continue;
    }
    if (!isObject(lock) || !isObject(lock.packages)) continue;
    const packages: string[] = [];
    for (const [key, entry] of Object.entries(lock.packages)) {
      if (key === '' || !isObject(entry) || entry.dev === true) continue;
      const name = typeof entry.name === 'string' ? entry.name : key.split('node_modules/').pop();
      if (name && typeof entry.version === 'string') packages.push(`${name}@${entry.version}`);
    }
    return { file, packages };
  }
  return null;
}

/** The `name@version` entries of `packages` that BAD_PACKAGES names, once each. */
export function badPackages(packages: readonly string[]): string[] {
  const bad = packages.filter((p) => {
    const at = p.lastIndexOf('@');
    const fixed = at > 0 ? BAD_PACKAGES[p.slice(0, at)] : undefined;
    return fixed !== undefined && below(p.slice(at + 1), fixed);
  });
  return [...new Set(bad)];
}
