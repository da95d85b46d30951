/**
 * Every limit of the system, named, with its unit last (TigerBeetle style). A limit that is not here
 * does not exist; code that needs a bound imports it from this file.
 */

/** Bytes in a WebAssembly page. */
export const wasmPageBytes = 65536;

/** Hidden pages at the top of linear memory that hold one thread's asyncify frames while it unwinds. */
export const asyncifyPagesDefault = 2;

/** Longest port id (`<incarnation>.<serial>`), in bytes: what IPC state, frames and the directory accept. */
export const portIdBytesMax = 1024;

/** Names a task's IPC space may hold at once. */
export const namesPerTaskMax = 65536;
/** User references one send right or dead name may carry (Mach's MACH_PORT_UREFS_MAX). */
export const userRefsMax = 65534;
/** Default and largest queue length of a port (MACH_PORT_QLIMIT_DEFAULT / _MAX). */
export const portQueueLengthDefault = 5;
export const portQueueLengthMax = 1024;
/**
 * The window of NORMA IPC: what the proxy of a port on another node (its local stand-in) holds
 * until the home acknowledges it, in messages and in bytes; a sender blocks beyond it as at a full
 * local queue. Five messages (a local port's default) made a stream stop and go: the home
 * acknowledges a burst only once it has queued all of it, and the sender sat idle meanwhile.
 */
export const proxyQueueLength = 32;
export const proxyQueueBytesMax = 2 * 1024 * 1024;
/** Bytes of acknowledged messages a node keeps for the next sends (ipc/byte-recycler.ts): two windows. */
export const recycledMessageBytesMax = 2 * proxyQueueBytesMax;
/** Largest message: header, descriptors, inline and out-of-line bytes together. */
export const messageSizeMax = 64 * 1024 * 1024;
/** Descriptors one message may carry. */
export const messageDescriptorsMax = 1024;

/** Threads one task may have alive at once. */
export const threadsPerTaskMax = 256;
/** Mappings of memory objects one task may hold at once. */
export const mappingsPerTaskMax = 256;
/** Largest memory object. */
export const memoryObjectBytesMax = 1024 * 1024 * 1024;
/** Longest service name in the name service, in UTF-8 bytes. */
export const serviceNameBytesMax = 256;
/** Longest thread entry name, in UTF-8 bytes. */
export const entryNameBytesMax = 256;

/** Default time slice of a thread before a safepoint yields to the next runnable thread. */
export const timeSliceMsDefault = 10;
/**
 * Longest the kernel runs WebAssembly before returning to Node's event loop, so that I/O, timers
 * and signals are served while tasks compute (applies to preemptible tasks).
 */
export const eventLoopTurnMsMax = 20;
/** Loop iterations between two time checks in preemptible code (the local fuel of a function). */
export const fuelPerCheck = 4096;

/** Largest file of a task's in-memory file system (WASI returns EFBIG beyond it). */
export const memoryFsFileBytesMax = 1024 * 1024 * 1024;

/**
 * Largest frame body of the node-to-node wire protocol (src/net/wire-protocol.ts): 16 MiB of data
 * and 64 KiB for the fields around it. A receiver refuses a larger length from the frame header
 * alone, before it buffers a byte of the body, so one connection never holds more than this.
 */
export const frameSizeMax = 16 * 1024 * 1024 + 64 * 1024;
/**
 * Bytes a peer connection may hold unsent before `Peer.send` tells its caller to wait for
 * `Peer.drained()`: enough to keep a loopback or LAN link busy, small enough that a slow peer
 * costs a bounded amount of memory.
 */
export const peerWriteBufferBytesMax = 1024 * 1024;
/** Largest buffer a connection keeps for gathering the frames of one write (larger writes get their own). */
export const peerGatherBytesMax = 4 * 1024 * 1024;
/** Default time a new connection has for each phase of its handshake: TLS, then hello and welcome. */
export const handshakeTimeoutMsDefault = 5000;
/** How long a connection that this node closes waits for the peer to close its side before it is destroyed. */
export const peerCloseLingerMs = 1000;

/** The longest line of the node's control protocol, either way (a request with 1024 args of 1 KiB fits). */
export const controlLineBytesMax = 1024 * 1024;

/** The longest message of a `reject` frame, in characters (the rest of a longer one is cut). */
export const rejectMessageLengthMax = 4096;

/** Default lease TTL: a node that stops renewing vanishes from the directory this long after (plus etcd's expiry check). */
export const leaseTtlSecondsDefault = 10;
/** Longest one call to etcd may take before it fails with CLUSTER_UNAVAILABLE. */
export const clusterCallMsMax = 2000;
/** Pause between two probes of an unavailable etcd (each a lease renewal, or a read before joining). */
export const clusterProbeIntervalMs = 250;
/** Attempts of a compare-and-swap that keeps losing to concurrent writers before it gives up. */
export const clusterCasAttemptsMax = 16;
/** Longest cluster name (the key prefix of its records in etcd), in UTF-8 bytes. */
export const clusterNameBytesMax = 64;
