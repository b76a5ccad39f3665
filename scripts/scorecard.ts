/**
 * The Node-RED flow library's scorecard, offline: what https://flows.nodered.org checks on a
 * published node package and that can be checked without a network.
 *
 *   node --import tsx scripts/scorecard.ts [root]
 *
 * Exit code 0 with a summary when every check passes, 1 with the list of what failed.
 * `root` defaults to the repository root. The nodes' `.js` files are built (`npm run build`),
 * so run it after the build: the scorecard reads the paths that package.json `node-red.nodes`
 * lists, as the flow library and Node-RED do.
 *
 * What it checks (the flow library's check ids in brackets, where it has one):
 * - [P01] a licence: package.json `license` and a LICENSE file
 * - [P02] package.json `repository`
 * - [P03] the `node-red` keyword
 * - [P04] the `node-red` section: `version` (the Node-RED versions supported) and `nodes`
 * - [P05] a scoped package name (`@scope/name`)
 * - [P06] `engines.node`
 * - [P07] at most 6 runtime dependencies
 * - [N01] each node's `.js` exists, its `.html` beside it, and in the `.html` a literal
 *   `RED.nodes.registerType('<type>', {...})` inside `<script type="text/javascript">`
 * - [N02] each node type is registered once, and not under the name of a Node-RED core node
 * - [N03] help for each node (`<script type="text/html" data-help-name="<type>">` with text,
 *   or `locales/en-US/<file>.html`), an en-US message catalogue
 *   (`locales/en-US/<file>.json`, with the type's own section) and its icon file
 * - [E01] every node type that is not a config node is used in some example flow under
 *   `examples/`, and every example there is a valid flow export (a JSON array of nodes)
 */
import fs from 'node:fs';
import path from 'node:path';

/** The outcome of one check. */
export interface CheckResult {
  /** The check, e.g. `licence` or `qe-dispatcher: help`. */
  name: string;
  ok: boolean;
  /** What was found, or what is wrong and what to do about it. */
  detail: string;
}

/** The most runtime dependencies that the flow library accepts without a warning. */
export const MAX_DEPENDENCIES = 6;

/** Node types of Node-RED's core nodes: a package must not register these names. */
const CORE_TYPES = new Set([
  'inject',
  'debug',
  'complete',
  'catch',
  'status',
  'link in',
  'link out',
  'link call',
  'comment',
  'unknown',
  'junction',
  'function',
  'switch',
  'change',
  'range',
  'template',
  'delay',
  'trigger',
  'exec',
  'rbe',
  'tls-config',
  'http proxy',
  'mqtt in',
  'mqtt out',
  'mqtt-broker',
  'http in',
  'http response',
  'http request',
  'websocket in',
  'websocket out',
  'websocket-listener',
  'websocket-client',
  'tcp in',
  'tcp out',
  'tcp request',
  'udp in',
  'udp out',
  'csv',
  'html',
  'json',
  'xml',
  'yaml',
  'split',
  'join',
  'sort',
  'batch',
  'file',
  'file in',
  'watch',
  'tab',
  'subflow',
  'group',
]);

interface PackageJson {
  name?: unknown;
  license?: unknown;
  repository?: unknown;
  keywords?: unknown;
  engines?: { node?: unknown } | unknown;
  dependencies?: Record<string, string> | unknown;
  'node-red'?: { version?: unknown; nodes?: unknown } | unknown;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';
const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The contents of every `<script ...>` element of an HTML file whose opening tag matches. */
function scriptBlocks(html: string, openTag: RegExp): string[] {
  const blocks: string[] = [];
  const re = /<script\b([^>]*)>([\s\S]*?)<\/script>/gi;
  for (let m = re.exec(html); m !== null; m = re.exec(html)) {
    if (openTag.test(m[1] ?? '')) blocks.push(m[2] ?? '');
  }
  return blocks;
}

const JS_SCRIPT = /\btype\s*=\s*(["'])text\/javascript\1/i;

/**
 * Runs every check on the package at `root` (a directory with a package.json) and returns
 * one result a check, passed or failed. Never throws for a broken package: a file that is
 * missing or unreadable is a failed check.
 */
export function checkPackage(root: string): CheckResult[] {
  const results: CheckResult[] = [];
  const check = (name: string, ok: boolean, detail: string): boolean => {
    results.push({ name, ok, detail });
    return ok;
  };

  let pkg: PackageJson;
  try {
    pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as PackageJson;
  } catch (err) {
    check('package.json', false, `cannot read ${root}/package.json: ${(err as Error).message}`);
    return results;
  }

  // [P01] licence
  const licenceFile = ['LICENSE', 'LICENSE.md', 'LICENSE.txt', 'LICENCE', 'LICENCE.md'].find(
    (f) => fs.existsSync(path.join(root, f)) && fs.statSync(path.join(root, f)).size > 0,
  );
  check(
    'licence',
    nonEmptyString(pkg.license) && licenceFile !== undefined,
    nonEmptyString(pkg.license)
      ? licenceFile
        ? `${pkg.license}, ${licenceFile}`
        : `package.json says ${pkg.license} but there is no (non-empty) LICENSE file: add one`
      : 'package.json has no "license": add one (an SPDX id, e.g. "MIT") and a LICENSE file',
  );

  // [P02] repository
  const repo = isObject(pkg.repository) ? pkg.repository.url : pkg.repository;
  check(
    'repository',
    nonEmptyString(repo),
    nonEmptyString(repo) ? repo : 'package.json has no "repository" (with a url): add it',
  );

  // [P03] keyword
  const keywords = Array.isArray(pkg.keywords) ? pkg.keywords : [];
  check(
    'keyword node-red',
    keywords.includes('node-red'),
    keywords.includes('node-red')
      ? 'keywords include "node-red"'
      : 'package.json "keywords" lacks "node-red": the flow library only lists packages with it',
  );

  // [P04] node-red section
  const section = pkg['node-red'];
  const nodes: Record<string, unknown> =
    isObject(section) && isObject(section.nodes) ? section.nodes : {};
  const nodeTypes = Object.keys(nodes);
  check(
    'node-red.nodes',
    nodeTypes.length > 0,
    nodeTypes.length > 0
      ? `${nodeTypes.length} node types`
      : 'package.json has no "node-red": {"nodes": {"<type>": "<file>.js"}}: add it',
  );
  const nrVersion = isObject(section) ? section.version : undefined;
  check(
    'node-red.version',
    nonEmptyString(nrVersion) && /\d/.test(nrVersion),
    nonEmptyString(nrVersion)
      ? nrVersion
      : 'package.json "node-red" has no "version" (the Node-RED versions supported, e.g. ">=4.0.0")',
  );

  // [P05] scoped name
  const scoped =
    nonEmptyString(pkg.name) &&
    /^@[a-z0-9-~][a-z0-9-._~]*\/[a-z0-9-~][a-z0-9-._~]*$/.test(pkg.name);
  check(
    'scoped name',
    scoped,
    scoped
      ? String(pkg.name)
      : `package name ${JSON.stringify(pkg.name)} is not scoped: new packages must be named @scope/name`,
  );

  // [P06] engines
  const engineNode = isObject(pkg.engines) ? pkg.engines.node : undefined;
  check(
    'engines.node',
    nonEmptyString(engineNode),
    nonEmptyString(engineNode)
      ? engineNode
      : 'package.json has no "engines": {"node": ...}: say which Node.js versions it runs on',
  );

  // [P07] dependencies
  const deps = isObject(pkg.dependencies) ? Object.keys(pkg.dependencies) : [];
  check(
    'dependencies',
    deps.length <= MAX_DEPENDENCIES,
    deps.length <= MAX_DEPENDENCIES
      ? `${deps.length} runtime dependencies (at most ${MAX_DEPENDENCIES})`
      : `${deps.length} runtime dependencies (${deps.join(', ')}): at most ${MAX_DEPENDENCIES}; ` +
          'move build and test tools to devDependencies, drop what does not earn its place',
  );

  // Per node
  const configTypes = new Set<string>();
  const registeredIn = new Map<string, string>();
  for (const type of nodeTypes) {
    const file = nodes[type];
    if (!nonEmptyString(file) || !file.endsWith('.js')) {
      check(`${type}: files`, false, `node-red.nodes["${type}"] must be the path of a .js file`);
      continue;
    }
    const jsPath = path.join(root, file);
    const dir = path.dirname(jsPath);
    const base = path.basename(file, '.js');
    const htmlPath = path.join(dir, `${base}.html`);
    const hasJs = fs.existsSync(jsPath);
    const hasHtml = fs.existsSync(htmlPath);
    check(
      `${type}: files`,
      hasJs && hasHtml,
      hasJs && hasHtml
        ? `${file} and ${base}.html`
        : [
            hasJs ? '' : `${file} is missing (it is built: run \`npm run build\` first)`,
            hasHtml ? '' : `${path.relative(root, htmlPath)} is missing beside it`,
          ]
            .filter(Boolean)
            .join('; '),
    );
    if (!hasHtml) continue;
    const html = fs.readFileSync(htmlPath, 'utf8');

    // [N01] a literal registerType inside <script type="text/javascript">
    const jsBlocks = scriptBlocks(html, JS_SCRIPT);
    const literal = new RegExp(
      `RED\\.nodes\\.registerType\\(\\s*(["'])${escapeRegExp(type)}\\1\\s*,\\s*\\{`,
    );
    const definition = jsBlocks.find((b) => literal.test(b));
    check(
      `${type}: registerType`,
      definition !== undefined,
      definition !== undefined
        ? `RED.nodes.registerType('${type}', {...}) in <script type="text/javascript">`
        : jsBlocks.length === 0
          ? `${base}.html has no <script type="text/javascript">: the flow library reads the ` +
            'node definition from there'
          : `${base}.html does not call RED.nodes.registerType('${type}', {...}) with a literal ` +
            'type and an object literal: the flow library cannot read it otherwise',
    );
    const body = definition ? definition.slice(definition.search(literal)) : '';
    if (/\bcategory\s*:\s*(["'])config\1/.test(body)) configTypes.add(type);

    // [N02] unique, not a core type
    const previous = registeredIn.get(type);
    registeredIn.set(type, file);
    check(
      `${type}: unique name`,
      previous === undefined && !CORE_TYPES.has(type),
      previous !== undefined
        ? `registered twice (${previous}, ${file})`
        : CORE_TYPES.has(type)
          ? `"${type}" is the name of a Node-RED core node: rename it`
          : 'not a core node name',
    );

    // [N03] help
    const helpRe = new RegExp(
      `<script\\b[^>]*\\bdata-help-name\\s*=\\s*(["'])${escapeRegExp(type)}\\1[^>]*>([\\s\\S]*?)</script>`,
      'i',
    );
    const helpText = (helpRe.exec(html)?.[2] ?? '').replace(/<[^>]*>/g, '').trim();
    const localeHelp = path.join(dir, 'locales', 'en-US', `${base}.html`);
    const hasHelp = helpText !== '' || fs.existsSync(localeHelp);
    check(
      `${type}: help`,
      hasHelp,
      hasHelp
        ? helpText !== ''
          ? `data-help-name="${type}" in ${base}.html`
          : path.relative(root, localeHelp)
        : `no help: add <script type="text/html" data-help-name="${type}"> with Inputs / ` +
            `Outputs / Details to ${base}.html (or locales/en-US/${base}.html)`,
    );

    // [N03] en-US locale
    const localePath = path.join(dir, 'locales', 'en-US', `${base}.json`);
    let localeProblem = '';
    try {
      const catalogue = JSON.parse(fs.readFileSync(localePath, 'utf8')) as unknown;
      if (!isObject(catalogue) || !isObject(catalogue[type])) {
        localeProblem = `${path.relative(root, localePath)} has no "${type}" section`;
      }
    } catch (err) {
      localeProblem = fs.existsSync(localePath)
        ? `${path.relative(root, localePath)} is not valid JSON: ${(err as Error).message}`
        : `no en-US locale: add ${path.relative(root, localePath)}`;
    }
    check(
      `${type}: en-US locale`,
      localeProblem === '',
      localeProblem || path.relative(root, localePath),
    );

    // Icon: a file in the node's icons/ (or the package's icons/), or a Node-RED icon.
    // (Not without a readable definition: the registerType check says what is wrong.)
    const icon = /\bicon\s*:\s*(["'])([^"']+)\1/.exec(body)?.[2];
    if (definition === undefined) {
      // nothing to read the icon from
    } else if (icon === undefined) {
      check(
        `${type}: icon`,
        false,
        `the definition of ${type} has no literal icon: add icon: '<file>.svg' and the file under icons/`,
      );
    } else if (icon.startsWith('font-awesome/') || icon.startsWith('node-red/')) {
      check(`${type}: icon`, true, `${icon} (a Node-RED icon)`);
    } else {
      const found = [path.join(dir, 'icons', icon), path.join(root, 'icons', icon)].find((p) =>
        fs.existsSync(p),
      );
      check(
        `${type}: icon`,
        found !== undefined,
        found !== undefined
          ? path.relative(root, found)
          : `icon ${icon} not found in ${path.relative(root, path.join(dir, 'icons'))}/ nor icons/`,
      );
    }
  }

  // [E01] examples
  const examplesDir = path.join(root, 'examples');
  const used = new Set<string>();
  let exampleFiles: string[] = [];
  try {
    exampleFiles = fs
      .readdirSync(examplesDir)
      .filter((f) => f.endsWith('.json'))
      .sort();
  } catch {
    // no examples/ directory: every node below fails
  }
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
    check(`example ${f}`, problem === '', problem || 'a flow export');
  }
  for (const type of nodeTypes) {
    if (configTypes.has(type)) continue;
    check(
      `${type}: example`,
      used.has(type),
      used.has(type)
        ? 'used in an example flow'
        : exampleFiles.length === 0
          ? 'no example flows: add examples/<name>.json (Node-RED: Import > Examples)'
          : `no flow under examples/ uses ${type}: add one that does`,
    );
  }

  return results;
}

/** The command line: prints the failures (exit 1) or a summary (exit 0). */
function main(argv: string[]): number {
  const root = path.resolve(argv[0] ?? path.join(__dirname, '..'));
  const results = checkPackage(root);
  const failed = results.filter((r) => !r.ok);
  if (failed.length > 0) {
    console.error(`scorecard: ${failed.length} of ${results.length} checks failed for ${root}:`);
    for (const r of failed) console.error(`  FAIL ${r.name}: ${r.detail}`);
    return 1;
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as {
    name: string;
    'node-red': { nodes: Record<string, string> };
  };
  const types = Object.keys(pkg['node-red'].nodes).length;
  const examples = results.filter((r) => r.name.startsWith('example ')).length;
  console.log(
    `scorecard: all ${results.length} checks passed for ${pkg.name} ` +
      `(${types} node types, ${examples} example flows)`,
  );
  return 0;
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
