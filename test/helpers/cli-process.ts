import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import path from 'node:path';

// A simulator command line (src/sim/*-cli.ts) run with --json in a child process, driven as
// a fault test drives it: commands on its stdin, JSON lines read from its stdout.

const root = path.join(__dirname, '../..');

export type JsonLine = Record<string, unknown> & { event: string };

export class CliProcess {
  readonly proc: ChildProcessWithoutNullStreams;
  readonly lines: JsonLine[] = [];
  /** Lines that were not JSON (there must be none with --json). */
  readonly notJson: string[] = [];
  stderr = '';
  private rest = '';
  private waiters: (() => void)[] = [];
  private readonly exited: Promise<number | null>;
  private closed = false;

  constructor(script: string, args: string[]) {
    this.proc = spawn(process.execPath, ['--import', 'tsx', script, '--json', ...args], {
      cwd: root,
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code) => resolve(code)));
    // 'close': the output is all read.
    this.proc.once('close', () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    this.proc.stderr.on('data', (d) => {
      this.stderr += d;
    });
    this.proc.stdout.on('data', (d) => {
      const parts = (this.rest + d).split('\n');
      this.rest = parts.pop() ?? '';
      for (const text of parts) {
        try {
          this.lines.push(JSON.parse(text) as JsonLine);
        } catch {
          this.notJson.push(text);
        }
      }
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** The first line from index `since` on that matches (waits for it; mocha bounds the wait). */
  async waitFor(match: (l: JsonLine) => boolean, since = 0): Promise<JsonLine> {
    for (;;) {
      const found = this.lines.slice(since).find(match);
      if (found) return found;
      if (this.closed) throw new Error(`exited without the line: ${this.stderr}`);
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  /** Sends a command and resolves with its answer (an `ok` or `error` line). */
  async command(command: string): Promise<JsonLine> {
    const since = this.lines.length;
    this.proc.stdin.write(`${command}\n`);
    return this.waitFor(
      (l) => (l.event === 'ok' || l.event === 'error') && l.command === command,
      since,
    );
  }

  /** Resolves with the exit code once the process has exited. */
  exit(): Promise<number | null> {
    return this.exited;
  }

  /** In `finally`: makes sure the child is gone (only this child, by its pid). */
  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
  }
}
