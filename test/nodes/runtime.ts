/**
 * The Node-RED runtime that the node tests run on. Node tests import the helper from here,
 * never from 'node-red-node-test-helper' directly, so that one environment variable picks
 * the runtime:
 *
 * - `QE_NODE_RED_PATH` unset: the project's own devDependency `node-red` (4.x).
 * - `QE_NODE_RED_PATH` set: another Node-RED install, given as its main file
 *   (`.../node_modules/node-red/lib/red.js`), its package directory
 *   (`.../node_modules/node-red`) or the directory that installed it (`.ci/nr5`).
 *   `.ci/run` uses this for the Node-RED 5 / Node 22 pass.
 *
 * Note: the helper's constructor already loads the runtime that it finds by itself (the
 * project's node-red 4) when it is first required; `helper.init(runtimePath)` then
 * replaces every runtime module that it uses, so nodes run on the chosen runtime only
 * (test/nodes/runtime.test.ts checks that).
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { NodeInitializer } from 'node-red';
import helper from 'node-red-node-test-helper';

/** The file that `helper.init` requires: Node-RED's main module, `node-red/lib/red.js`. */
export const runtimePath: string = resolveRuntimePath(process.env.QE_NODE_RED_PATH);

/** `require` relative to the chosen runtime, for its own packages (`@node-red/nodes/...`). */
export const runtimeRequire: NodeJS.Require = createRequire(runtimePath);

/** The version of the Node-RED package in use, e.g. `4.1.15` or `5.0.7`. */
export const nodeRedVersion: string = readRuntimeVersion(runtimePath);

/** The major version of Node-RED in use, e.g. `4` or `5`. */
export const nodeRedMajor: number = Number.parseInt(nodeRedVersion, 10);

helper.init(runtimePath);

/**
 * The initialiser of one of Node-RED's core nodes, from the runtime in use, for test flows
 * that wire a node under test to core nodes. `file` is relative to `@node-red/nodes/core`,
 * e.g. `function/15-change.js` or `common/20-inject.js`. (Catch, Status and Complete are
 * loaded by the helper itself when a flow contains them.)
 */
export function coreNode(file: string): NodeInitializer {
  return runtimeRequire(`@node-red/nodes/core/${file}`);
}

function resolveRuntimePath(given: string | undefined): string {
  if (!given) {
    return require.resolve('node-red');
  }
  const full = path.resolve(given);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(full);
  } catch {
    throw new Error(
      `QE_NODE_RED_PATH=${given}: no such file or directory. Point it at a Node-RED install ` +
        '(its lib/red.js, its package directory, or the directory that installed it), or unset it.',
    );
  }
  if (stat.isFile()) {
    return full;
  }
  try {
    // From the package directory itself or from the directory that installed it, Node's
    // resolution finds node_modules/node-red and its "main" (lib/red.js).
    return createRequire(path.join(full, 'package.json')).resolve('node-red');
  } catch {
    throw new Error(
      `QE_NODE_RED_PATH=${given}: no Node-RED found there (nothing resolves 'node-red'). ` +
        'Install it there first (see .ci/run), or unset QE_NODE_RED_PATH.',
    );
  }
}

function readRuntimeVersion(mainFile: string): string {
  // The nearest package.json above lib/red.js is Node-RED's own.
  let dir = path.dirname(mainFile);
  while (dir !== path.dirname(dir)) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'node-red' && pkg.version) {
        return pkg.version;
      }
    }
    dir = path.dirname(dir);
  }
  throw new Error(`Cannot find the package.json of the Node-RED runtime at ${mainFile}`);
}

export { helper };
export default helper;
