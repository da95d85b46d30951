/**
 * The NORMA IPC frame kinds (to be merged into wire-protocol.ts). Field names are short: these
 * frames are the per-message overhead of remote IPC.
 */

import type { PortId } from '../ipc/port.js';

/** A send ('s') or send-once ('o') right by port id; `dead` when its port had died at the sender. */
export interface WireRight {
  kind: 's' | 'o';
  port: PortId;
  dead?: true;
}

export type WireDescriptor = { t: 'port'; right: WireRight } | { t: 'ool'; bytes: Uint8Array };

export type IpcFrame =
  /** A message for the port `port`, homed at the receiver, sent through a send or send-once right. */
  | {
      k: 'msg';
      port: PortId;
      seq: number;
      dest: 's' | 'o';
      id: number;
      reply: WireRight | null;
      descriptors: WireDescriptor[];
      body: Uint8Array;
    }
  /** Every message for `port` up to `seq` from the receiver of this frame is queued. */
  | { k: 'ack'; port: PortId; seq: number }
  /** Not queued from `expected` on: the queue is full (wait for `space`), or the port moved. */
  | { k: 'nack'; port: PortId; expected: number; reason: 'full' | 'moved' }
  /** The queue of `port` has room again (for a sender that got nack 'full'). */
  | { k: 'space'; port: PortId }
  /** Node `node` got a send right to `port` (homed at the receiver) from the sender of this frame. */
  | { k: 'acquire'; port: PortId; node: string }
  /** A send-once right to `port` (homed at the receiver) moved from node `from` to node `to`. */
  | { k: 'so-move'; port: PortId; from: string; to: string }
  /** The sender dropped its proxy of `port`: it held `count` send rights, all gone now. */
  | { k: 'release'; port: PortId; count: number }
  /** `port` is dead (it died, or its node does not know it): every right to it is a dead name. */
  | { k: 'dead'; port: PortId };
