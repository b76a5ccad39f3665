/**
 * Which Chromium the browser tests launch, and with which flags. Owns that choice, in order:
 *
 * 1. QE_CHROMIUM_PATH, when set (a Chromium binary of your choice);
 * 2. Debian's /usr/bin/chromium, when installed (`apt-get install chromium`);
 * 3. the headless Chromium that the devDependency @sparticuz/chromium ships inside its npm
 *    tarball, so `npm install && npm test` needs no browser installed by hand. Its
 *    `executablePath()` unpacks the brotli-compressed binary, its WebGL libraries and a font
 *    (Open Sans) into os.tmpdir(), about 200 MB, in a few seconds. Here it unpacks into a fresh
 *    directory that is then renamed to <tmpdir>/qe-chromium-<package version>: the rename is
 *    atomic, so a run killed while unpacking or two runs at once never launch a half-written
 *    binary, and later runs reuse the directory. A run killed while unpacking leaves its
 *    `qe-chromium-*.partial-*` directory behind (delete it by hand).
 *    The binary needs libnss3 and libnspr4 (and libexpat1) from the system: Debian packages
 *    `libnss3` (which pulls in `libnspr4`) and `libexpat1`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/**
 * Chromium's flags for a test: headless, as root (no sandbox), and silent on a closed network
 * (no background requests, component updates, sync or first-run pages).
 */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface ChromiumBinary {
  executablePath: string;
  /** Where it came from, for messages: the variable, Debian's package, or the npm package. */
  source: string;
  /** The environment to launch it with. */
  env: NodeJS.ProcessEnv;
}

const DEBIAN_CHROMIUM = '/usr/bin/chromium';

/** The Chromium to launch (see the top of this file); throws, saying how to get one, if none. */
export async function findChromium(): Promise<ChromiumBinary> {
  const fromEnv = process.env.QE_CHROMIUM_PATH;
  if (fromEnv) {
    if (!fs.existsSync(fromEnv)) {
      throw new Error(`QE_CHROMIUM_PATH is ${fromEnv}, and there is no file there`);
    }
    return { executablePath: fromEnv, source: 'QE_CHROMIUM_PATH', env: process.env };
  }
  if (fs.existsSync(DEBIAN_CHROMIUM)) {
    return { executablePath: DEBIAN_CHROMIUM, source: "Debian's chromium", env: process.env };
  }
  return unpackSparticuz();
}

/** @sparticuz/chromium's binary, unpacked once per package version into os.tmpdir(). */
async function unpackSparticuz(): Promise<ChromiumBinary> {
  let entry: string;
  try {
    entry = require.resolve('@sparticuz/chromium');
  } catch (err) {
    throw new Error(
      `@sparticuz/chromium cannot be found (${(err as Error).message}): it is a ` +
        "devDependency, run `npm install`; or install Debian's chromium, or set QE_CHROMIUM_PATH",
    );
  }
  // Its package.json is not in its "exports": read it from its directory (build/cjs/ below).
  const pkgDir = path.resolve(path.dirname(entry), '../..');
  const { version } = JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')) as {
    version: string;
  };
  const dir = path.join(os.tmpdir(), `qe-chromium-${version}`);
  const executablePath = path.join(dir, 'chromium');
  // System fonts when there are any, and the package's Open Sans always, so that
  // screenshots have text on a machine with no fonts installed.
  const env = { ...process.env, FONTCONFIG_FILE: path.join(dir, 'fonts.conf') };
  const source = `@sparticuz/chromium ${version} (${dir})`;
  if (fs.existsSync(dir)) return { executablePath, source, env };

  const partial = fs.mkdtempSync(`${dir}.partial-`);
  try {
    const sparticuz = require('@sparticuz/chromium') as {
      executablePath(input?: string): Promise<string>;
    };
    // It unpacks into os.tmpdir(), which reads TMPDIR: point that at the fresh directory for
    // the call (it skips whatever already exists there, so it must be empty).
    const tmpdir = process.env.TMPDIR;
    process.env.TMPDIR = partial;
    let unpacked: Promise<string>;
    try {
      unpacked = sparticuz.executablePath();
    } finally {
      if (tmpdir === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = tmpdir;
    }
    const binary = await unpacked;
    if (binary !== path.join(partial, 'chromium')) {
      throw new Error(`it unpacked to ${binary}, not into ${partial}`);
    }
    fs.writeFileSync(
      path.join(partial, 'fonts.conf'),
      [
        '<?xml version="1.0"?>',
        '<!DOCTYPE fontconfig SYSTEM "fonts.dtd">',
        '<fontconfig>',
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>',
        `  <dir>${path.join(dir, 'fonts')}</dir>`,
        `  <cachedir>${path.join(dir, 'fonts-cache')}</cachedir>`,
        '</fontconfig>',
        '',
      ].join('\n'),
    );
    try {
      fs.renameSync(partial, dir);
    } catch (err) {
      // Another run finished first: use its directory.
      if (!fs.existsSync(executablePath)) throw err;
    }
  } catch (err) {
    throw new Error(
      `could not unpack @sparticuz/chromium ${version} into ${dir}: ${(err as Error).message}`,
    );
  } finally {
    fs.rmSync(partial, { recursive: true, force: true });
  }
  return { executablePath, source, env };
}

/** A headless Chromium on a Node-RED editor, as the browser tests open it. */
export interface EditorPage {
  context: import('playwright-core').BrowserContext;
  page: import('playwright-core').Page;
  /** The page's console errors and uncaught exceptions, as they come. */
  errors: string[];
}

/**
 * Launches Chromium (`findChromium`) with a fresh profile named after `name`, sets
 * `waitMs` as its default timeout, records the page's errors and opens `base` (the editor).
 * The caller waits for what it needs of the editor, and closes `context`.
 */
export async function openEditor(
  base: string,
  options: { name: string; height?: number; waitMs: number },
): Promise<EditorPage> {
  const browser = await findChromium();
  const { chromium } = require('playwright-core') as typeof import('playwright-core');
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), `qe-${options.name}-chromium-`));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: browser.executablePath,
    env: browser.env,
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1600, height: options.height ?? 1000 },
    timeout: options.waitMs,
  });
  context.setDefaultTimeout(options.waitMs);
  const page = context.pages()[0] ?? (await context.newPage());
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console.error: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  await page.goto(base, { waitUntil: 'load' });
  return { context, page, errors };
}
