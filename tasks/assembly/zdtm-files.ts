// zdtm-files: state in the task's WASI in-memory file system (preopen "/" is descriptor 3).
// Before `zdtm: ready` it builds
//   zdtm/a.txt          1000 bytes of text, written and closed, then opened read-only again
//                       and read up to offset 300: left OPEN there;
//   zdtm/empty/         an empty directory;
//   zdtm/log.txt        opened for writing, "part 0|" written: left OPEN, written partly;
//   zdtm/sub/data.bin   4096 bytes of binary pattern, opened read-write, seeked to 1234: left OPEN.
// Wait: 4 x 50 ms sleeps; after each one it appends "part <n>|" to log.txt through the open
// descriptor. Then it checks: a.txt's offset is still 300 and the next 100 bytes are right;
// data.bin's offset is 1234, the bytes there are right, a write at the offset lands in place; log.txt
// holds the five parts; the listing of zdtm/ is a.txt, empty, log.txt, sub (creation order) with
// the right types; path_filestat_get gives the right sizes and types; every descriptor closes once.
// Output:
//   zdtm: ready
//   zdtm: pass zdtm-files
import { fd_write, sleep } from "../sdk/norma";
import { begin, expect, expectEq, expectKr, fail, ready, verdict } from "./lib/zdtm";

@external("wasi_snapshot_preview1", "path_open")
declare function path_open(dirfd: i32, dirflags: i32, path: usize, pathLen: i32, oflags: i32, rightsBase: i64, rightsInheriting: i64, fdflags: i32, fdOut: usize): i32;
@external("wasi_snapshot_preview1", "path_create_directory")
declare function path_create_directory(dirfd: i32, path: usize, pathLen: i32): i32;
@external("wasi_snapshot_preview1", "path_filestat_get")
declare function path_filestat_get(dirfd: i32, flags: i32, path: usize, pathLen: i32, filestatOut: usize): i32;
@external("wasi_snapshot_preview1", "fd_read")
declare function fd_read(fd: i32, iovs: usize, iovsLen: i32, nreadOut: usize): i32;
@external("wasi_snapshot_preview1", "fd_seek")
declare function fd_seek(fd: i32, offset: i64, whence: i32, newOffsetOut: usize): i32;
@external("wasi_snapshot_preview1", "fd_close")
declare function fd_close(fd: i32): i32;
@external("wasi_snapshot_preview1", "fd_readdir")
declare function fd_readdir(fd: i32, buf: usize, bufLen: i32, cookie: i64, bufusedOut: usize): i32;

const ROOT = 3; // the preopened "/"
const OFLAGS_CREAT = 1;
const OFLAGS_DIRECTORY = 2;
const OFLAGS_TRUNC = 8;
const WHENCE_SET = 0;
const WHENCE_CUR = 1;
const FILETYPE_DIRECTORY: u8 = 3;
const FILETYPE_REGULAR: u8 = 4;
const EBADF = 8;
// Rights: fd_datasync .. fd_allocate (bits 0-8), fd_filestat_get/set_size/set_times, poll.
const FILE_RIGHTS: i64 = 0x1ff | (1 << 21) | (1 << 22) | (1 << 23) | (1 << 27);
const READ_RIGHTS: i64 = (1 << 1) | (1 << 2) | (1 << 5) | (1 << 21); // read, seek, tell, filestat_get
const DIR_RIGHTS: i64 = (1 << 13) | (1 << 14) | (1 << 18) | (1 << 21); // path_open, readdir, path_filestat_get, filestat_get

const A_BYTES = 1000;
const A_OFFSET = 300;
const DATA_BYTES = 4096;
const DATA_OFFSET = 1234;

let slot: usize = 0; // out-parameters and an iovec (one thread: no interleaving), set in _start
let iov: usize = 0;

function aByte(i: i32): u8 {
  return i % 50 == 49 ? 10 : <u8>(97 + (i * 7 + i / 50) % 26); // lines of 49 letters
}
function dataByte(i: i32): u8 {
  return <u8>(i * 151 + (i >> 8) * 3 + 1);
}

function cstr(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

function open(path: string, oflags: i32, rights: i64, inheriting: i64 = 0): i32 {
  const p = cstr(path);
  const errno = path_open(ROOT, 0, changetype<usize>(p), p.byteLength, oflags, rights, inheriting, 0, slot);
  if (errno != 0) fail("path_open(" + path + "): errno " + errno.toString());
  return load<i32>(slot);
}

function mkdir(path: string): void {
  const p = cstr(path);
  const errno = path_create_directory(ROOT, changetype<usize>(p), p.byteLength);
  if (errno != 0) fail("path_create_directory(" + path + "): errno " + errno.toString());
}

/** fd_write of [ptr, ptr+len); true when all of it was written. */
function write(fd: i32, ptr: usize, len: i32): bool {
  store<u32>(iov, ptr);
  store<u32>(iov, len, 4);
  return fd_write(fd, iov, 1, slot) == 0 && load<i32>(slot) == len;
}

function writeString(fd: i32, s: string): bool {
  const b = cstr(s);
  return write(fd, changetype<usize>(b), b.byteLength);
}

/** fd_read into [ptr, ptr+len); the byte count, or -1 on an error. */
function read(fd: i32, ptr: usize, len: i32): i32 {
  store<u32>(iov, ptr);
  store<u32>(iov, len, 4);
  return fd_read(fd, iov, 1, slot) == 0 ? load<i32>(slot) : -1;
}

/** fd_seek; the new offset, or -1 on an error. */
function seek(fd: i32, offset: i64, whence: i32): i64 {
  return fd_seek(fd, offset, whence, slot) == 0 ? load<i64>(slot) : -1;
}

/** path_filestat_get: checks the type and size. */
function expectStat(path: string, filetype: u8, size: i64): void {
  const stat = heap.alloc(64);
  const p = cstr(path);
  if (expectEq("path_filestat_get(" + path + ") errno", path_filestat_get(ROOT, 0, changetype<usize>(p), p.byteLength, stat), 0)) {
    expectEq("filetype of " + path, load<u8>(stat, 16), filetype);
    if (filetype == FILETYPE_REGULAR) expectEq("size of " + path, load<i64>(stat, 32), size);
  }
}

/** The entries of directory fd as "name:type,name:type,...". */
function listing(fd: i32): string {
  const buf = heap.alloc(1024);
  if (fd_readdir(fd, buf, 1024, 0, slot) != 0) return "readdir failed";
  const used = load<i32>(slot);
  let s = "";
  let at = 0;
  while (at + 24 <= used) {
    const nameLength = load<i32>(buf + at, 16);
    const type = load<u8>(buf + at, 20);
    s += (s.length ? "," : "") + String.UTF8.decodeUnsafe(buf + at + 24, nameLength) + ":" + type.toString();
    at += 24 + nameLength;
  }
  return s;
}

export function _start(): void {
  begin("zdtm-files");
  slot = heap.alloc(16);
  iov = heap.alloc(8);
  mkdir("zdtm");
  const buf = heap.alloc(DATA_BYTES);

  for (let i = 0; i < A_BYTES; i++) store<u8>(buf + i, aByte(i));
  let fd = open("zdtm/a.txt", OFLAGS_CREAT | OFLAGS_TRUNC, FILE_RIGHTS);
  if (!write(fd, buf, A_BYTES) || fd_close(fd) != 0) fail("writing a.txt");
  const aFd = open("zdtm/a.txt", 0, READ_RIGHTS);
  if (read(aFd, buf, A_OFFSET) != A_OFFSET) fail("reading a.txt");

  mkdir("zdtm/empty");
  const logFd = open("zdtm/log.txt", OFLAGS_CREAT | OFLAGS_TRUNC, FILE_RIGHTS);
  if (!writeString(logFd, "part 0|")) fail("writing log.txt");

  mkdir("zdtm/sub");
  for (let i = 0; i < DATA_BYTES; i++) store<u8>(buf + i, dataByte(i));
  const dataFd = open("zdtm/sub/data.bin", OFLAGS_CREAT | OFLAGS_TRUNC, FILE_RIGHTS);
  if (!write(dataFd, buf, DATA_BYTES) || seek(dataFd, DATA_OFFSET, WHENCE_SET) != DATA_OFFSET) fail("writing data.bin");
  ready();

  for (let i = 1; i <= 4; i++) {
    expectKr("clock_sleep", sleep(50));
    expect(writeString(logFd, "part " + i.toString() + "|"), "appending to log.txt");
  }

  // a.txt: the read-only descriptor kept its offset.
  expectEq("a.txt offset after the wait", seek(aFd, 0, WHENCE_CUR), A_OFFSET);
  expectEq("a.txt read", read(aFd, buf, 100), 100);
  let good = 0;
  for (let i = 0; i < 100; i++) if (load<u8>(buf + i) == aByte(A_OFFSET + i)) good++;
  expectEq("a.txt bytes 300..399 right", good, 100);
  expectEq("a.txt offset after reading", seek(aFd, 0, WHENCE_CUR), A_OFFSET + 100);

  // data.bin: offset in the middle, read then overwrite there.
  expectEq("data.bin offset after the wait", seek(dataFd, 0, WHENCE_CUR), DATA_OFFSET);
  expectEq("data.bin read", read(dataFd, buf, 16), 16);
  good = 0;
  for (let i = 0; i < 16; i++) if (load<u8>(buf + i) == dataByte(DATA_OFFSET + i)) good++;
  expectEq("data.bin bytes at the offset right", good, 16);
  expect(writeString(dataFd, "OVERRIDE"), "data.bin write at the offset");
  expectEq("data.bin rewind", seek(dataFd, 0, WHENCE_SET), 0);
  expectEq("data.bin read all", read(dataFd, buf, DATA_BYTES), DATA_BYTES);
  good = 0;
  const over = cstr("OVERRIDE");
  for (let i = 0; i < DATA_BYTES; i++) {
    const inOver = i >= DATA_OFFSET + 16 && i < DATA_OFFSET + 24;
    const want = inOver ? load<u8>(changetype<usize>(over) + i - DATA_OFFSET - 16) : dataByte(i);
    if (load<u8>(buf + i) == want) good++;
  }
  expectEq("data.bin bytes right", good, DATA_BYTES);

  // log.txt: written partly before the freeze, the rest after.
  const logText = "part 0|part 1|part 2|part 3|part 4|";
  expectEq("log.txt offset", seek(logFd, 0, WHENCE_CUR), logText.length);
  expectEq("close log.txt", fd_close(logFd), 0);
  fd = open("zdtm/log.txt", 0, READ_RIGHTS);
  const n = read(fd, buf, 256);
  expect(n >= 0 && String.UTF8.decodeUnsafe(buf, n) == logText, "log.txt contents");
  expectEq("close log.txt again", fd_close(fd), 0);

  // The tree.
  fd = open("zdtm", OFLAGS_DIRECTORY, DIR_RIGHTS);
  const list = listing(fd);
  expect(list == "a.txt:4,empty:3,log.txt:4,sub:3", "listing of zdtm/: " + list);
  expectEq("close zdtm/", fd_close(fd), 0);
  expectStat("zdtm/a.txt", FILETYPE_REGULAR, A_BYTES);
  expectStat("zdtm/empty", FILETYPE_DIRECTORY, 0);
  expectStat("zdtm/log.txt", FILETYPE_REGULAR, logText.length);
  expectStat("zdtm/sub", FILETYPE_DIRECTORY, 0);
  expectStat("zdtm/sub/data.bin", FILETYPE_REGULAR, DATA_BYTES);

  expectEq("close a.txt", fd_close(aFd), 0);
  expectEq("close data.bin", fd_close(dataFd), 0);
  expectEq("close a.txt twice", fd_close(aFd), EBADF);
  verdict();
}
