/**
 * What the simulator command lines (qe-sim-charger, qe-sim-battery) share: reading a number
 * option, closing cleanly on SIGINT / SIGTERM, running `main` with the usage on error,
 * printing lines (text, or one JSON object a line with --json), and the control channel: one
 * command a line on stdin, so that a test can play faults on a simulator in another process
 * (`controlled` wires it to the shutdown).
 */

import readline from 'node:readline';

/** The number option `--name`, or `fallback` when absent; anything but a number >= 0 throws. */
export function numberOption(name: string, value: string | undefined, fallback: number): number {
  return nonNegative(`--${name}`, value, fallback);
}

/** `value` as a number >= 0 (`fallback` when absent); anything else throws, naming `label`. */
export function nonNegative(label: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new Error(`${label} must be a number >= 0, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** A simulator's shutdown: begun by SIGINT / SIGTERM, or by hand with a reason. */
export interface Shutdown {
  /** Whether closing has begun. */
  readonly closing: boolean;
  /** Begins closing (once; later calls do nothing). */
  begin(reason: string): void;
}

/**
 * On the first SIGINT or SIGTERM (or `begin`): `close(reason)`, then exit code 0, or 1 with
 * the reason on stderr when closing fails. A second signal while closing is ignored.
 */
export function closeOnSignals(close: (reason: string) => Promise<unknown>): Shutdown {
  let closing = false;
  const begin = (reason: string) => {
    if (closing) return;
    closing = true;
    close(reason).then(
      () => {
        process.exitCode ??= 0;
      },
      (err: Error) => {
        process.stderr.write(`close failed: ${err.message}\n`);
        process.exitCode = 1;
      },
    );
  };
  process.once('SIGINT', () => begin('SIGINT'));
  process.once('SIGTERM', () => begin('SIGTERM'));
  return {
    get closing() {
      return closing;
    },
    begin,
  };
}

/**
 * A simulator under control: closes on SIGINT / SIGTERM or the `quit` command (the control
 * channel stops reading first, then `close(reason)`), and runs the commands of the control
 * channel with `run(words, quit)`. Returns the shutdown.
 */
export function controlled(
  close: (reason: string) => Promise<unknown>,
  run: (words: string[], quit: () => void) => Promise<void>,
  print: Print,
): Shutdown {
  let control: { close(): void } | undefined;
  const shutdown = closeOnSignals((reason) => {
    control?.close();
    return close(reason);
  });
  control = controlChannel((words) => run(words, () => shutdown.begin('quit')), print);
  return shutdown;
}

/** The options of every simulator command line: --json, --help / -h. */
export const COMMON_OPTIONS = {
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** With --help / -h: prints the usage and returns true (the command then does nothing else). */
export function helpAsked(values: { help?: boolean | undefined }, usage: string): boolean {
  if (values.help) process.stdout.write(usage);
  return values.help === true;
}

/** Runs `main` with the arguments; an error is printed with the usage, exit code 1. */
export function runCli(
  command: string,
  usage: string,
  main: (argv: string[]) => Promise<void>,
): void {
  main(process.argv.slice(2)).catch((err: Error) => {
    process.stderr.write(`${command}: ${err.message}\n\n${usage}`);
    process.exitCode = 1;
  });
}

/** Prints one line: `<ISO time> <text>`, or with `json` the object `{time, event, ...fields}`. */
export type Print = (event: string, fields: Record<string, unknown>, text: string) => void;

export function printer(json: boolean, out: NodeJS.WritableStream = process.stdout): Print {
  return (event, fields, text) => {
    const time = new Date().toISOString();
    out.write(json ? `${JSON.stringify({ time, event, ...fields })}\n` : `${time} ${text}\n`);
  };
}

/**
 * The control channel: reads commands from `input` (stdin), one a line, words separated by
 * blanks (empty lines and lines from # on are ignored), and runs them one after the other.
 * `run` resolves when the command is done; then `ok <line>` is printed, or `error <line>:
 * <why>` (event `ok` / `error` with `command` and `error` in JSON). The end of the input
 * does nothing: a simulator started with stdin from /dev/null runs on. `close` stops reading.
 */
export function controlChannel(
  run: (words: string[]) => Promise<void>,
  print: Print,
  input: NodeJS.ReadableStream = process.stdin,
): { close(): void } {
  const rl = readline.createInterface({ input, terminal: false });
  let queue: Promise<void> = Promise.resolve();
  rl.on('line', (raw: string) => {
    const command = raw.replace(/#.*/, '').trim();
    if (!command) return;
    queue = queue.then(() =>
      run(command.split(/\s+/)).then(
        () => print('ok', { command }, `ok ${command}`),
        (err: Error) =>
          print('error', { command, error: err.message }, `error ${command}: ${err.message}`),
      ),
    );
  });
  return {
    close() {
      rl.close();
      // A pipe left open would keep the process alive after the simulators closed.
      if (input === process.stdin) process.stdin.destroy();
    },
  };
}
