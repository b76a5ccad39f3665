/**
 * The errors of the node side, typed as the core's are: NodeConfigError (the node cannot be
 * set up from its properties or its config nodes: it refuses every message) and
 * NodeInputError (one message it cannot take). Each carries the status the node shows for it,
 * so that the log, the Catch nodes (`done(err)` / `node.error(err, msg)`) and the status come
 * from the one object.
 *
 * The message starts with the node: `<type>: <text>`, unless the text names one already
 * (`qe-coordinator s1: ...`, `qe-asset-state b1: ...`). `name` stays "Error": Catch nodes get
 * `msg.error.message` as `Error: <type>: ...`, as before these classes; tell them apart with
 * `instanceof` or `kind`.
 */
import type { NodeStatus } from 'node-red';

export abstract class NodeError extends Error {
  abstract readonly kind: 'config' | 'input';
  /** The node type that raised it (qe-ocpp, ...). */
  readonly nodeType: string;
  /** What the node shows for it; null: the status stays as it is. */
  readonly status: NodeStatus | null;

  constructor(nodeType: string, text: string, status: NodeStatus | null) {
    super(text.startsWith('qe-') ? text : `${nodeType}: ${text}`);
    this.name = 'Error';
    this.nodeType = nodeType;
    this.status = status;
  }
}

/**
 * A node that cannot run as configured: the message says what and where (the field, the
 * config node); the status is the node's red `<type>.status.misconfigured` ring.
 */
export class NodeConfigError extends NodeError {
  readonly kind = 'config' as const;

  constructor(nodeType: string, text: string) {
    super(nodeType, text, {
      fill: 'red',
      shape: 'ring',
      text: `${nodeType}.status.misconfigured`,
    });
  }

  /** An error from the core while setting up, as `<type>: <its message>`. */
  static from(nodeType: string, err: unknown): NodeConfigError {
    if (err instanceof NodeConfigError) return err;
    return new NodeConfigError(nodeType, `${nodeType}: ${messageOf(err)}`);
  }
}

/** A message the node cannot take: what is wrong with which part of it. */
export class NodeInputError extends NodeError {
  readonly kind = 'input' as const;

  constructor(nodeType: string, text: string, status: NodeStatus | null = null) {
    super(nodeType, text, status);
  }

  /** An error from the core on a message, as `<type>: <where>: <its message>`. */
  static from(nodeType: string, err: unknown, where?: string): NodeInputError {
    if (err instanceof NodeInputError) return err;
    const at = where === undefined ? '' : `${where}: `;
    return new NodeInputError(nodeType, `${nodeType}: ${at}${messageOf(err)}`);
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
