/**
 * The Node-RED flow library's scorecard, offline: the checks of `node-red-dev validate`
 * (npm package node-red-dev, repository node-red/node-red-dev-cli, version 0.1.6; the
 * flow library shows its scorecard), under node-red-dev's own ids and meanings, as far as
 * they can be made without a network; then checks of our own, under ids QE01... that are
 * ours alone (node-red-dev has no such ids).
 *
 *   node --import tsx scripts/scorecard.ts [root]
 *
 * Exit code 0 with a summary when every check passes, 1 with the list of what failed; both
 * name the checks not made offline. `root` defaults to the repository root. Run it after
 * `npm run build`: it reads the `.js` paths that package.json `node-red.nodes` lists.
 *
 * node-red-dev's checks (its docs/<id>.md says what each asks):
 * - P01 licence: package.json `license`, an SPDX id or `SEE LICENSE IN <file>` (the file there)
 * - P02 the package.json in the `repository` has the same name: needs the repository (off
 *   in node-red-dev 0.1.6 too). Not checked here.
 * - P03 package.json `repository` or `bugs` (a url or an email), for users to report bugs
 * - P04 naming: a scoped name (`@scope/name`), asked of packages first published from Feb 2022
 *   (this check has no registry to tell older packages apart); an unscoped name that starts
 *   with node-red or nodered must start with node-red-contrib / nodered-contrib
 * - P05 the `node-red` keyword
 * - P06 `node-red.version` declared (whether it admits the current `latest` or `maintenance`
 *   Node-RED needs the registry: not checked here)
 * - P07 `engines.node` declared (whether it admits the lowest Node.js of the latest Node-RED
 *   needs the registry: not checked here)
 * - P08 no package of a similar name in the flow library's catalogue: needs the catalogue.
 *   Not checked here.
 * - N01 unique node names. node-red-dev compares them with the catalogue (network); here: each
 *   type registered once in the package, and not under the name of a Node-RED core node
 * - N02 every node type that is not a config node is used in some example flow under
 *   `examples/` (sub-folders included)
 * - D01 at most 6 runtime dependencies
 * - D02 no package known to break Node-RED (node-red-dev's list) in the runtime dependency
 *   tree, read from package-lock.json (scripts/scorecard-deps.ts; skipped without one)
 * - D03 no dependency whose latest version its range excludes: needs the registry. Not
 *   checked here.
 *
 * Ours (QE), what Node-RED and the flow library need to show a node well:
 * - QE01 a non-empty LICENSE file
 * - QE02 package.json `node-red.nodes` lists the node types (node-red-dev skips its node
 *   checks without it)
 * - QE03 each node's `.js` exists (built) and its `.html` is beside it
 * - QE04 in the `.html` a literal `RED.nodes.registerType('<type>', {...})` inside
 *   `<script type="text/javascript">`: the only form that node-red-dev and the flow library
 *   read (a node they cannot read is silently left out of N01 and N02)
 * - QE05 help for each node (`<script type="text/html" data-help-name="<type>">` with text,
 *   or `locales/en-US/<file>.html`)
 * - QE06 an en-US message catalogue (`locales/en-US/<file>.json`, with the type's section)
 * - QE07 the node's icon file (or a Node-RED icon)
 * - QE08 every example under `examples/` is a flow export (a JSON array of nodes)
 *
 * The checks of one node type (QE03-QE07, N01) are in scorecard-nodes.ts, D02's reading of
 * the lockfile in scorecard-deps.ts; this file has the package's checks, the examples' and
 * the command line.
 */
import fs from 'node:fs';
import path from 'node:path';
import { badPackages, runtimeTree } from './scorecard-deps';
import { checkNode, isObject, nonEmptyString } from './scorecard-nodes';

/** The outcome of one check. */
export interface CheckResult {
  /** node-red-dev's id of the check (`P01`, `N02`, `D01`...), or ours (`QE01`...). */
  id: string;
  /** What was checked, e.g. `licence` or `qe-dispatcher: help`. */
  name: string;
  /** False: failed. True: passed, or not checked here (`skipped`). */
  ok: boolean;
  /** Not checked offline (it needs the network, or a file that is not there): see detail. */
  skipped?: true;
  /** What was found, or what is wrong and what to do about it. */
  detail: string;
}

/** node-red-dev's checks that need the network: never made here. */
export const NOT_OFFLINE: readonly { id: string; name: string; detail: string }[] = [
  { id: 'P02', name: 'repository name', detail: 'needs the repository; off in node-red-dev too' },
  { id: 'P08', name: 'similar names', detail: "needs the flow library's catalogue" },
  { id: 'D03', name: 'out-of-date dependencies', detail: 'needs the npm registry' },
];

/** The most runtime dependencies that the flow library accepts without a warning. */
export const MAX_DEPENDENCIES = 6;

interface PackageJson {
  name?: unknown;
  license?: unknown;
  repository?: unknown;
  bugs?: unknown;
  keywords?: unknown;
  engines?: { node?: unknown } | unknown;
  dependencies?: Record<string, string> | unknown;
  'node-red'?: { version?: unknown; nodes?: unknown } | unknown;
}

/** Every `.json` file under `dir`, sub-folders included (as node-red-dev reads examples/). */
function jsonFilesUnder(dir: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .flatMap((e) => {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) return jsonFilesUnder(p);
      return e.name.endsWith('.json') ? [p] : [];
    })
    .sort();
}

/**
 * Runs every check on the package at `root` (a directory with a package.json) and returns
 * one result a check: passed, failed, or not checked offline (`skipped`, with the reason).
 * Never throws for a broken package: a file that is missing or unreadable is a failed check.
 */
export function checkPackage(root: string): CheckResult[] {
  const results: CheckResult[] = [];
  const check = (id: string, name: string, ok: boolean, detail: string): boolean => {
    results.push({ id, name, ok, detail });
    return ok;
  };
  const skip = (id: string, name: string, detail: string): void => {
    results.push({ id, name, ok: true, skipped: true, detail });
  };

  let pkg: PackageJson;
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as PackageJson;
  } catch (err) {
    check(
      'QE02',
      'package.json',
      false,
      `cannot read ${root}/package.json: ${(err as Error).message}`,
    );
    return results;
  }

  // P01 licence: an SPDX id, or SEE LICENSE IN <file> with that file there
  const seeFile = nonEmptyString(pkg.license)
    ? /^SEE LICEN[CS]E IN (.+)$/i.exec(pkg.license.trim())?.[1]
    : undefined;
  const seeFileThere = seeFile !== undefined && fs.existsSync(path.join(root, seeFile));
  check(
    'P01',
    'licence',
    nonEmptyString(pkg.license) && (seeFile === undefined || seeFileThere),
    !nonEmptyString(pkg.license)
      ? 'package.json has no "license": add one (an SPDX id, e.g. "MIT")'
      : seeFile !== undefined && !seeFileThere
        ? `package.json says "${pkg.license}" but ${seeFile} is not there`
        : pkg.license,
  );

  // P03 repository or bugs
  const repo = isObject(pkg.repository) ? pkg.repository.url : pkg.repository;
  const bugs = isObject(pkg.bugs) ? (pkg.bugs.url ?? pkg.bugs.email) : pkg.bugs;
  check(
    'P03',
    'repository or bugs',
    nonEmptyString(repo) || nonEmptyString(bugs),
    nonEmptyString(repo) || nonEmptyString(bugs)
      ? [repo, bugs].filter(nonEmptyString).join(', ')
      : 'package.json has neither "repository" (with a url) nor "bugs" (a url or an email): ' +
          'add one, so that users can report bugs',
  );

  // P04 naming
  const scoped =
    nonEmptyString(pkg.name) &&
    /^@[a-z0-9-~][a-z0-9-._~]*\/[a-z0-9-~][a-z0-9-._~]*$/.test(pkg.name);
  check(
    'P04',
    'scoped name',
    scoped,
    scoped
      ? String(pkg.name)
      : `package name ${JSON.stringify(pkg.name)} is not scoped: new packages must be named ` +
          '@scope/name' +
          (nonEmptyString(pkg.name) && /^(node-red|nodered)(?!-contrib-)/i.test(pkg.name)
            ? ' (and an unscoped name starting with node-red must be node-red-contrib-...)'
            : ''),
  );

  // P05 keyword
  const keywords = Array.isArray(pkg.keywords) ? pkg.keywords : [];
  check(
    'P05',
    'keyword node-red',
    keywords.includes('node-red'),
    keywords.includes('node-red')
      ? 'keywords include "node-red"'
      : 'package.json "keywords" lacks "node-red": the flow library only lists packages with it',
  );

  // P06 node-red.version
  const section = pkg['node-red'];
  const nrVersion = isObject(section) ? section.version : undefined;
  check(
    'P06',
    'node-red.version',
    nonEmptyString(nrVersion) && /\d/.test(nrVersion),
    nonEmptyString(nrVersion)
      ? `${nrVersion} (whether it admits the current Node-RED releases needs the registry)`
      : 'package.json "node-red" has no "version" (the Node-RED versions supported, e.g. ">=4.0.0")',
  );

  // P07 engines.node
  const engineNode = isObject(pkg.engines) ? pkg.engines.node : undefined;
  check(
    'P07',
    'engines.node',
    nonEmptyString(engineNode),
    nonEmptyString(engineNode)
      ? engineNode
      : 'package.json has no "engines": {"node": ...}: say which Node.js versions it runs on',
  );

  // D01 dependencies
  const deps = isObject(pkg.dependencies) ? Object.keys(pkg.dependencies) : [];
  check(
    'D01',
    'dependencies',
    deps.length <= MAX_DEPENDENCIES,
    deps.length <= MAX_DEPENDENCIES
      ? `${deps.length} runtime dependencies (at most ${MAX_DEPENDENCIES})`
      : `${deps.length} runtime dependencies (${deps.join(', ')}): at most ${MAX_DEPENDENCIES}; ` +
          'move build and test tools to devDependencies, drop what does not earn its place',
  );

  // D02 known-bad packages in the runtime tree
  const tree = runtimeTree(root);
  if (tree === null) {
    skip('D02', 'bad packages', 'no package-lock.json to read the dependency tree from');
  } else {
    const bad = badPackages(tree.packages);
    check(
      'D02',
      'bad packages',
      bad.length === 0,
      bad.length === 0
        ? `none in the ${tree.packages.length} runtime packages of ${tree.file}`
        : `${bad.join(', ')} in the runtime dependency tree (${tree.file}): known to break ` +
            'Node-RED; update the dependency that brings it in',
    );
  }

  // QE01 licence file
  const licenceFile = ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'LICENCE', 'LICENCE.md'].find(
    (f) => fs.existsSync(path.join(root, f)) && fs.statSync(path.join(root, f)).size > 0,
  );
  check(
    'QE01',
    'licence file',
    licenceFile !== undefined,
    licenceFile ?? 'no (non-empty) LICENSE file: add the licence text',
  );

  // QE02 node-red.nodes
  const nodes: Record<string, unknown> =
    isObject(section) && isObject(section.nodes) ? section.nodes : {};
  const nodeTypes = Object.keys(nodes);
  check(
    'QE02',
    'node-red.nodes',
    nodeTypes.length > 0,
    nodeTypes.length > 0
      ? `${nodeTypes.length} node types`
      : 'package.json has no "node-red": {"nodes": {"<type>": "<file>.js"}}: add it',
  );

  // Per node: QE03-QE07, N01 (scorecard-nodes.ts)
  const configTypes = new Set<string>();
  const registeredIn = new Map<string, string>();
  for (const type of nodeTypes) {
    if (checkNode(root, type, nodes[type], check, registeredIn)) configTypes.add(type);
  }

  // QE08 every example is a flow export; N02 every non-config node type is in one
  const examplesDir = path.join(root, 'examples');
  const used = new Set<string>();
  const exampleFiles = jsonFilesUnder(examplesDir).map((p) => path.relative(examplesDir, p));
  for (const f of exampleFiles) {
    let problem = '';
    try {
      const flow = JSON.parse(fs.readFileSync(path.join(examplesDir, f), 'utf8')) as unknown;
      if (!Array.isArray(flow) || flow.some((n) => !isObject(n) || !nonEmptyString(n.type))) {
        problem = 'not a flow export (a JSON array of nodes with a type)';
      } else {
        for (const n of flow as { type: string }[]) used.add(n.type);
      }
    } catch (err) {
      problem = `not valid JSON: ${(err as Error).message}`;
    }
    check('QE08', `example ${f}`, problem === '', problem || 'a flow export');
  }
  for (const type of nodeTypes) {
    if (configTypes.has(type)) continue;
    check(
      'N02',
      `${type}: example`,
      used.has(type),
      used.has(type)
        ? 'used in an example flow'
        : exampleFiles.length === 0
          ? 'no example flows: add examples/<name>.json (Node-RED: Import > Examples)'
          : `no flow under examples/ uses ${type}: add one that does`,
    );
  }

  for (const c of NOT_OFFLINE) skip(c.id, c.name, c.detail);
  return results;
}

/** The command line: prints the failures (exit 1) or a summary (exit 0). */
function main(argv: string[]): number {
  const root = path.resolve(argv[0] ?? path.join(__dirname, '..'));
  const results = checkPackage(root);
  const failed = results.filter((r) => !r.ok);
  const skipped = results.filter((r) => r.skipped);
  const checked = results.length - skipped.length;
  const notChecked =
    `not checked offline: ${skipped.map((r) => `${r.id} ${r.name} (${r.detail})`).join(', ')}; ` +
    'node-red-dev validate (npm package node-red-dev) makes them, online';
  if (failed.length > 0) {
    console.error(`scorecard: ${failed.length} of ${checked} checks failed for ${root}:`);
    for (const r of failed) console.error(`  FAIL ${r.id} ${r.name}: ${r.detail}`);
    console.error(notChecked);
    return 1;
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    name: string;
    'node-red': { nodes: Record<string, string> };
  };
  const types = Object.keys(pkg['node-red'].nodes).length;
  const examples = results.filter((r) => r.name.startsWith('example ')).length;
  console.log(
    `scorecard: all ${checked} checks passed for ${pkg.name} ` +
      `(${types} node types, ${examples} example flows)`,
  );
  console.log(notChecked);
  return 0;
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
