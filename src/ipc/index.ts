/** The IPC core's public API: Mach port semantics as a pure state machine (see ipc.ts). */

export type { IpcEvent } from './event.js';
export { auditIpcState } from './invariants.js';
export {
  type HandOff,
  Ipc,
  type IpcState,
  ipcStateVersion,
  type NameInfo,
  type NameResult,
  newIpcState,
  type PortResult,
  type ReceiveResult,
  receiveWouldBlock,
  type SendResult,
  sendWouldBlock,
  type TranslateResult,
} from './ipc.js';
export {
  exportTasks,
  type ImportOptions,
  type ImportReport,
  type IpcSnapshot,
  type IpcSnapshotEntry,
  type IpcSnapshotOutsidePort,
  type IpcSnapshotPort,
  type IpcSnapshotSet,
  type IpcSnapshotSpace,
  importTasks,
  ipcSnapshotVersion,
  validateIpcSnapshot,
} from './ipc-snapshot.js';
export {
  type MessageLayout,
  messageLayout,
  type OutgoingDescriptor,
  type OutgoingMessage,
  type QueuedDescriptor,
  type QueuedMessage,
  type ReceivedDescriptor,
  type ReceivedMessage,
  receivedMessageSize,
} from './message.js';
export { notificationBody, notificationValue } from './notification.js';
export { type KObject, type PortId, type PortName, portNameDead, portNameNull, type TaskId } from './port.js';
export type { TransitRight, TransitRightKind } from './right.js';
