// The protocol of remote-bench-server and remote-bench-client (bench/remote-ipc.ts). Not an entry
// point: build.ts compiles only the files directly in tasks/assembly/.

/** Answered with the same inline bytes, through the request's send-once reply right. */
export const BENCH_ECHO: i32 = 1;
/** Counted, not answered (sent through a send right: the queue limits are the flow control). */
export const BENCH_DATA: i32 = 2;
/** Answered with the number of DATA messages received since the previous SYNC (u32). */
export const BENCH_SYNC: i32 = 3;
/** Answered like SYNC; then the server ends. */
export const BENCH_STOP: i32 = 4;
/** The id of every answer. */
export const BENCH_REPLY: i32 = 100;
