/**
 * What the simulator command lines (qe-sim-charger, qe-sim-battery) share: reading a number
 * option, closing cleanly on SIGINT / SIGTERM, and running `main` with the usage on error.
 */

/** The number option `--name`, or `fallback` when absent; anything but a number >= 0 throws. */
export function numberOption(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new Error(`--${name} must be a number >= 0, got ${JSON.stringify(value)}`);
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
