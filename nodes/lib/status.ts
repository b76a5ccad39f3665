/**
 * The status of a node, one way for every node: `show(fill, shape, text)` or `set(status)`
 * now; `update()` to render the node's state now, `refresh()` to render it at most once per 250 ms
 * (busy sites change many commands a second, the editor needs a few updates); nothing once
 * the node has closed (its pending refresh is cancelled).
 */
import type { Node, NodeStatus } from 'node-red';
import type { NodeError } from './errors';

export type Fill = 'red' | 'green' | 'yellow' | 'blue' | 'grey';
export type Shape = 'ring' | 'dot';

/** How often a throttled status is re-rendered at the most. */
export const STATUS_THROTTLE_MS = 250;

export class Status {
  private timer: NodeJS.Timeout | null = null;
  private isClosed = false;

  /**
   * `render` gives the status of the node's current state, for `update` and `refresh` (it may
   * be given later, once what it reads is set up; nothing shows until then).
   */
  constructor(
    private readonly node: Node,
    public render: () => NodeStatus | null = () => null,
    private readonly throttleMs = STATUS_THROTTLE_MS,
  ) {
    node.on('close', (_removed: boolean, done: () => void) => {
      this.close();
      done();
    });
  }

  /** The node has closed: no status from now on. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** Shows `status` now. */
  set(status: NodeStatus): void {
    if (!this.isClosed) this.node.status(status);
  }

  /** Shows a fill, a shape and a text (an i18n key or plain text) now. */
  show(fill: Fill, shape: Shape, text: string): void {
    this.set({ fill, shape, text });
  }

  /** Shows what an error carries, if anything. */
  error(err: NodeError): void {
    if (err.status) this.set(err.status);
  }

  /** Renders now (a pending refresh still comes). */
  readonly update = (): void => {
    if (this.isClosed) return;
    const s = this.render();
    if (s) this.node.status(s);
  };

  /** Renders within 250 ms: the first call starts the timer, the next ones ride on it. */
  readonly refresh = (): void => {
    if (this.timer !== null || this.isClosed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.update();
    }, this.throttleMs);
  };

  /** Cancels a pending refresh and shows nothing more (called on close). */
  close(): void {
    this.isClosed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
