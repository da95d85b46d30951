import { strict as assert } from 'node:assert';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { controlLineBytesMax } from '../../src/limits.js';
import { LineReader, parseRequest } from '../../src/node/control-protocol.js';
import { ok, startNode, stopNode, tempStore } from './node-helpers.js';

describe('control protocol: parsing', () => {
  it('accepts a valid request and fills in the defaults', () => {
    const parsed = parseRequest(
      JSON.stringify({
        v: 1,
        id: 'a',
        method: 'spawn',
        params: { module: '/x/y.wasm', checkpointEveryMs: 100 },
      }),
    );
    assert.ok(parsed.ok);
    assert.deepEqual(parsed.request, {
      id: 'a',
      method: 'spawn',
      params: { module: '/x/y.wasm', args: [], env: {}, preempt: false, checkpointEveryMs: 100, keep: 3 },
    });
  });

  it('refuses what is not a valid request, keeping the id when there is one', () => {
    const cases: [string, number | string | null, RegExp][] = [
      ['{', null, /not JSON/],
      ['[]', null, /an object/],
      ['{"v":1,"method":"ps"}', null, /an object/],
      ['{"v":2,"id":1,"method":"ps"}', 1, /version 2 is not supported/],
      ['{"v":1,"id":2,"method":"reboot"}', 2, /unknown method "reboot"/],
      ['{"v":1,"id":3,"method":"toString"}', 3, /unknown method/],
      ['{"v":1,"id":4,"method":"freeze","params":{}}', 4, /task/],
      ['{"v":1,"id":5,"method":"ps","params":{"all":true}}', 5, /Unrecognized key/],
      ['{"v":1,"id":6,"method":"spawn","params":{"module":"relative.wasm"}}', 6, /absolute/],
      ['{"v":1,"id":7,"method":"spawn","params":{"module":"/a.wasm","name":"../etc"}}', 7, /name/],
      ['{"v":1,"id":8,"method":"spawn","params":{"module":"/a.wasm","keep":0}}', 8, /keep/],
    ];
    for (const [line, id, message] of cases) {
      const parsed = parseRequest(line);
      assert.ok(!parsed.ok, line);
      assert.equal(parsed.id, id, line);
      assert.equal(parsed.error.code, 'NODE_BAD_REQUEST');
      assert.match(parsed.error.message, message, line);
    }
  });

  it('splits lines across chunks, and skips an oversized one to its end', () => {
    const lines: string[] = [];
    let oversized = 0;
    const reader = new LineReader(
      (line) => lines.push(line),
      () => oversized++,
      10,
    );
    reader.push(Buffer.from('ab'));
    reader.push(Buffer.from('c\nde\n'));
    reader.push(Buffer.from('0123456789'));
    reader.push(Buffer.from('0123456789'));
    reader.push(Buffer.from('xx\nfg\n\n'));
    assert.deepEqual(lines, ['abc', 'de', 'fg']);
    assert.equal(oversized, 1);
  });
});

/** A raw connection to the node: send lines, read response objects. */
class Raw {
  readonly responses: Record<string, unknown>[] = [];
  #buffer = '';
  #waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let newline = this.#buffer.indexOf('\n');
      while (newline !== -1) {
        this.responses.push(JSON.parse(this.#buffer.slice(0, newline)));
        this.#buffer = this.#buffer.slice(newline + 1);
        newline = this.#buffer.indexOf('\n');
      }
      for (const waiter of this.#waiters.splice(0)) waiter();
    });
  }

  static open(path: string): Promise<Raw> {
    return new Promise((resolve, reject) => {
      const socket = connect(path, () => resolve(new Raw(socket)));
      socket.once('error', reject);
    });
  }

  /** Waits until `count` responses have arrived. */
  async next(count: number): Promise<Record<string, unknown>[]> {
    while (this.responses.length < count) {
      await new Promise<void>((resolve, reject) => {
        this.#waiters.push(resolve);
        this.socket.once('close', () => reject(new Error('the node closed the connection')));
      });
    }
    return this.responses.slice(0, count);
  }
}

describe('control protocol: a real node refuses bad requests and keeps serving', function () {
  this.timeout(60_000);
  const store = tempStore();

  before(async () => {
    await startNode(store);
  });

  after(async () => {
    await stopNode(store);
  });

  it('a malformed line, an unknown method and an oversized line get NODE_BAD_REQUEST', async () => {
    const raw = await Raw.open(join(store, 'node.sock'));
    raw.socket.write('this is not json\n');
    const [notJson] = await raw.next(1);
    assert.deepEqual((notJson as { id: unknown }).id, null);
    assert.equal((notJson as { error: { code: string } }).error.code, 'NODE_BAD_REQUEST');

    raw.socket.write('{"v":1,"id":"m","method":"format-disk","params":{}}\n');
    const unknown = (await raw.next(2))[1] as { id: string; error: { code: string; hint: string } };
    assert.equal(unknown.id, 'm');
    assert.equal(unknown.error.code, 'NODE_BAD_REQUEST');
    assert.match(unknown.error.hint, /control-protocol/);

    // More than a MiB without a newline, sent in pieces; then a valid request on the same connection.
    const piece = 'x'.repeat(256 * 1024);
    for (let sent = 0; sent <= controlLineBytesMax; sent += piece.length) raw.socket.write(piece);
    raw.socket.write('\n{"v":1,"id":9,"method":"ps","params":{}}\n');
    const [, , oversized, ps] = (await raw.next(4)) as {
      id: unknown;
      error?: { code: string };
      result?: unknown;
    }[];
    assert.equal(oversized!.error?.code, 'NODE_BAD_REQUEST');
    assert.deepEqual(ps, { id: 9, result: { tasks: [] } });
    raw.socket.destroy();

    // Other clients are served as usual.
    assert.equal(await ok(store, 'ps'), 'no tasks\n');
    const status = JSON.parse(await ok(store, 'node', 'status', '--json'));
    assert.equal(status.protocol, 1);
  });

  it('a client that disconnects mid-request does not disturb the node', async () => {
    const raw = await Raw.open(join(store, 'node.sock'));
    raw.socket.write('{"v":1,"id":1,"method":"logs","params":{"task":"nope","follow":true}}\n{"v":1,"id":2,');
    raw.socket.destroy();
    assert.equal(await ok(store, 'ps'), 'no tasks\n');
  });
});
