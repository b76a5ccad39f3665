/**
 * The scorecard's checks of one node type (scripts/scorecard.ts runs them for each type in
 * package.json `node-red.nodes`): QE03 its `.js` and `.html`, QE04 a literal registerType in
 * `<script type="text/javascript">`, N01 a unique name that is not a core node's, QE05 help,
 * QE06 the en-US message catalogue, QE07 the icon. Also the small guards the checks share.
 */
import fs from 'node:fs';
import path from 'node:path';

/** Records the outcome of one check and returns `ok`. */
export type Check = (id: string, name: string, ok: boolean, detail: string) => boolean;

/** Node types of Node-RED's core nodes: a package must not register these names. */
const CORE_TYPES = new Set(
  (
    'inject,debug,complete,catch,status,link in,link out,link call,comment,unknown,' +
    'junction,function,switch,change,range,template,delay,trigger,exec,rbe,' +
    'tls-config,http proxy,mqtt in,mqtt out,mqtt-broker,http in,http response,' +
    'http request,websocket in,websocket out,websocket-listener,websocket-client,' +
    'tcp in,tcp out,tcp request,udp in,udp out,csv,html,json,xml,yaml,split,join,' +
    'sort,batch,file,file in,watch,tab,subflow,group'
  ).split(','),
);

export const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
export const nonEmptyString = (v: unknown): v is string => typeof v === 'string' && v.trim() !== '';
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
 * Checks the files of node `type`, registered as `file` (`node-red.nodes[type]`); `seen` is
 * where each type was registered so far (N01). Returns whether it is a config node (category
 * 'config'), which needs no example flow (N02).
 */
export function checkNode(
  root: string,
  type: string,
  file: unknown,
  check: Check,
  seen: Map<string, string>,
): boolean {
  if (!nonEmptyString(file) || !file.endsWith('.js')) {
    check(
      'QE03',
      `${type}: files`,
      false,
      `node-red.nodes["${type}"] must be the path of a .js file`,
    );
    return false;
  }
  const jsPath = path.join(root, file);
  const dir = path.dirname(jsPath);
  const base = path.basename(file, '.js');
  const htmlPath = path.join(dir, `${base}.html`);
  const hasJs = fs.existsSync(jsPath);
  const hasHtml = fs.existsSync(htmlPath);
  check(
    'QE03',
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
  if (!hasHtml) return false;
  const html = fs.readFileSync(htmlPath, 'utf8');

  // QE04 a literal registerType inside <script type="text/javascript">
  const jsBlocks = scriptBlocks(html, JS_SCRIPT);
  const literal = new RegExp(
    `RED\\.nodes\\.registerType\\(\\s*(["'])${escapeRegExp(type)}\\1\\s*,\\s*\\{`,
  );
  const definition = jsBlocks.find((b) => literal.test(b));
  check(
    'QE04',
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
  const isConfig = /\bcategory\s*:\s*(["'])config\1/.test(body);

  // N01 unique names (offline: within the package, and not a core node's name)
  const previous = seen.get(type);
  seen.set(type, file);
  check(
    'N01',
    `${type}: unique name`,
    previous === undefined && !CORE_TYPES.has(type),
    previous !== undefined
      ? `registered twice (${previous}, ${file})`
      : CORE_TYPES.has(type)
        ? `"${type}" is the name of a Node-RED core node: rename it`
        : 'not a core node name (the catalogue comparison needs the network)',
  );

  // QE05 help
  const helpRe = new RegExp(
    `<script\\b[^>]*\\bdata-help-name\\s*=\\s*(["'])${escapeRegExp(type)}\\1[^>]*>([\\s\\S]*?)</script>`,
    'i',
  );
  const helpText = (helpRe.exec(html)?.[2] ?? '').replace(/<[^>]*>/g, '').trim();
  const localeHelp = path.join(dir, 'locales', 'en-US', `${base}.html`);
  const hasHelp = helpText !== '' || fs.existsSync(localeHelp);
  check(
    'QE05',
    `${type}: help`,
    hasHelp,
    hasHelp
      ? helpText !== ''
        ? `data-help-name="${type}" in ${base}.html`
        : path.relative(root, localeHelp)
      : `no help: add <script type="text/html" data-help-name="${type}"> with Inputs / ` +
          `Outputs / Details to ${base}.html (or locales/en-US/${base}.html)`,
  );

  // QE06 en-US locale
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
    'QE06',
    `${type}: en-US locale`,
    localeProblem === '',
    localeProblem || path.relative(root, localePath),
  );

  // QE07 icon: a file in the node's icons/ (or the package's icons/), or a Node-RED icon.
  // (Not without a readable definition: QE04 says what is wrong.)
  const icon = /\bicon\s*:\s*(["'])([^"']+)\1/.exec(body)?.[2];
  if (definition === undefined) {
    // nothing to read the icon from
  } else if (icon === undefined) {
    check(
      'QE07',
      `${type}: icon`,
      false,
      `the definition of ${type} has no literal icon: add icon: '<file>.svg' and the file under icons/`,
    );
  } else if (icon.startsWith('font-awesome/') || icon.startsWith('node-red/')) {
    check('QE07', `${type}: icon`, true, `${icon} (a Node-RED icon)`);
  } else {
    const found = [path.join(dir, 'icons', icon), path.join(root, 'icons', icon)].find((p) =>
      fs.existsSync(p),
    );
    check(
      'QE07',
      `${type}: icon`,
      found !== undefined,
      found !== undefined
        ? path.relative(root, found)
        : `icon ${icon} not found in ${path.relative(root, path.join(dir, 'icons'))}/ nor icons/`,
    );
  }
  return isConfig;
}
