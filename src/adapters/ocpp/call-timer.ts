/**
 * CallTimer: the timeout of the calls the central system sends a charger, on one plain timer
 * per call. ocpp-rpc times each call with an AbortController, a timers/promises timeout and a
 * TimeoutError built (stack and all) before the call goes out, and aborts them when the answer
 * comes: measured on the 2-core bench machine under load, about 0.2 ms of CPU per call, the
 * largest part of a setpoint's cost at 10,000 chargers (bench/ocpp-10k.bench.ts). Here the
 * timeout starts when ocpp-rpc sends the call (its outbound 'call' event, where its own would
 * start), stops when the call settles, and when it fires the pending call is rejected with
 * ocpp-rpc's `TimeoutError('Call timeout')`, as ocpp-rpc would reject it (and forgets it: a
 * late answer is what it was before). It reaches ocpp-rpc's pending calls by message id
 * (`_pendingCalls`); on a version of ocpp-rpc without them `for` gives nothing and ocpp-rpc
 * times its calls itself. One call at a time per charger (the central system queues them).
 */
import { TimeoutError } from 'ocpp-rpc';

interface PendingCall {
  reject(err: Error): void;
}

/** Longest timeout a Node timer takes (ocpp-rpc's own handles longer ones). */
const MAX_MS = 2 ** 31 - 1;

export class CallTimer {
  private timer: NodeJS.Timeout | undefined;
  private nextMs: number | undefined;

  private constructor(private readonly pending: Map<string, PendingCall>) {}

  /** A timer for this ocpp-rpc client, or null when its pending calls cannot be reached. */
  static for(client: object): CallTimer | null {
    const pending = (client as { _pendingCalls?: unknown })._pendingCalls;
    return pending instanceof Map ? new CallTimer(pending as Map<string, PendingCall>) : null;
  }

  /** Whether this timer can time a call of `ms` (else ocpp-rpc times it: 0 or Infinity too). */
  static handles(ms: number): boolean {
    return ms > 0 && ms <= MAX_MS;
  }

  /** The next call sent times out `ms` after it goes out. */
  arm(ms: number): void {
    this.nextMs = ms;
  }

  /** ocpp-rpc sent a call (`messageId`): its timeout starts, if one was armed for it. */
  sent(messageId: string): void {
    const ms = this.nextMs;
    this.nextMs = undefined;
    if (ms === undefined) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pending.get(messageId)?.reject(new TimeoutError('Call timeout'));
    }, ms);
  }

  /** The call settled (answered, refused, timed out, or the connection went). */
  settled(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.nextMs = undefined;
  }
}
