// Quick transport benchmark (not committed). Usage: node bench.mjs  (forks its own far end)
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const D = '/work/main/dist/src/net/';
const { initCluster, loadNodeCredentials } = await import(D + 'cluster-credentials.js');
const { Transport } = await import(D + 'transport.js');

const role = process.argv[2];
const pct = (xs, p) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length * p)];

if (role === 'far') {
  // Far end: raw TCP echo/sink, raw TLS echo/sink, and a Transport that answers pings and counts pongs.
  const dir = process.argv[3];
  const creds = await loadNodeCredentials(dir, 'far', { issueIfMissing: true });
  const mk = (sock) => { sock.setNoDelay(true); let mode = null; let n = 0; sock.on('data', (c) => {
      if (mode === null) { mode = c[0]; c = c.subarray(1); }
      if (mode === 0x45) sock.write(c); else { n += c.length; if (n >= Number(process.env.SINK)) { sock.write('d'); n = 0; } } }); sock.on('error', () => {}); };
  const tcp = net.createServer(mk); await new Promise((r) => tcp.listen(0, '127.0.0.1', r));
  const tlsServer = tls.createServer({ key: creds.key, cert: creds.cert, ca: creds.ca, requestCert: true, minVersion: 'TLSv1.3' }, mk);
  await new Promise((r) => tlsServer.listen(0, '127.0.0.1', r));
  let bytes = 0;
  const t = await Transport.listen({ host: '127.0.0.1', port: 0, credentials: creds, incarnation: 'far-1', log: () => {}, onPeer: (peer) => {
    let frames = 0;
    peer.on('frame', (f) => { if (f.k === 'pong') { bytes += f.data.length; frames++; if (frames >= 200000 || bytes >= Number(process.env.SINK)) { bytes = 0; frames = 0; peer.send({ k: 'pong', seq: 0, data: new Uint8Array(0) }); } } });
  } });
  process.send({ tcp: tcp.address().port, tls: tlsServer.address().port, transport: t.address });
} else {
  const root = mkdtempSync(join(tmpdir(), 'netbench-'));
  const dir = join(root, 'c');
  await initCluster(dir);
  const creds = await loadNodeCredentials(dir, 'near', { issueIfMissing: true });
  const SINK = 64 * 1024 * 4096; // 256 MiB per throughput run
  const child = fork(new URL(import.meta.url).pathname, ['far', dir], { env: { ...process.env, SINK: String(SINK) } });
  const ports = await new Promise((r) => child.once('message', r));
  const near = await Transport.listen({ host: '127.0.0.1', port: 0, credentials: creds, incarnation: 'near-1', log: () => {}, onPeer: () => {} });
  const peer = await near.connect(ports.transport);

  const rounds = 20000, size = 100;
  const results = {};
  // --- round trips: stream sockets (raw TCP, raw TLS) echo
  async function streamRtt(sock) {
    sock.setNoDelay(true); sock.write(Buffer.from([0x45]));
    const msg = Buffer.alloc(size, 7); const times = [];
    let got = 0, resolve; sock.on('data', (c) => { got += c.length; if (got >= size) { got -= size; resolve(); } });
    for (let i = 0; i < rounds; i++) { const t0 = performance.now(); const p = new Promise((r) => (resolve = r)); sock.write(msg); await p; times.push(performance.now() - t0); }
    sock.destroy(); return times;
  }
  async function streamThroughput(sock, chunk) {
    sock.setNoDelay(true); sock.write(Buffer.from([0x53]));
    const buf = Buffer.alloc(chunk, 3); let done; sock.on('data', () => done());
    const p = new Promise((r) => (done = r)); const t0 = performance.now();
    for (let sent = 0; sent < SINK; sent += chunk) if (!sock.write(buf)) await new Promise((r) => sock.once('drain', r));
    await p; const s = (performance.now() - t0) / 1000; sock.destroy(); return SINK / s / 1e9;
  }
  const tcpSock = () => new Promise((r) => { const s = net.connect(ports.tcp, '127.0.0.1', () => r(s)); });
  const tlsSock = () => new Promise((r) => { const s = tls.connect({ host: '127.0.0.1', port: ports.tls, key: creds.key, cert: creds.cert, ca: creds.ca, checkServerIdentity: () => undefined }, () => r(s)); });
  const summary = (t) => `median ${(pct(t, 0.5) * 1000).toFixed(1)} µs, p99 ${(pct(t, 0.99) * 1000).toFixed(1)} µs`;

  for (let rep = 0; rep < 3; rep++) {
    results[`rtt raw TCP ${rep}`] = summary(await streamRtt(await tcpSock()));
    results[`rtt raw TLS ${rep}`] = summary(await streamRtt(await tlsSock()));
    { // transport ping/pong
      const data = new Uint8Array(size); const times = []; let resolve;
      const on = (f) => { if (f.k === 'pong') resolve(); }; peer.on('frame', on);
      for (let i = 0; i < rounds; i++) { const t0 = performance.now(); const p = new Promise((r) => (resolve = r)); peer.send({ k: 'ping', seq: i, data }); await p; times.push(performance.now() - t0); }
      peer.off('frame', on); results[`rtt transport ${rep}`] = summary(times);
    }
  }
  for (let rep = 0; rep < 3; rep++) {
    results[`64KiB raw TCP GB/s ${rep}`] = (await streamThroughput(await tcpSock(), 65536)).toFixed(2);
    results[`64KiB raw TLS GB/s ${rep}`] = (await streamThroughput(await tlsSock(), 65536)).toFixed(2);
    { const data = new Uint8Array(65536).fill(5); let done; const on = (f) => { if (f.k === 'pong') done(); }; peer.on('frame', on);
      const p = new Promise((r) => (done = r)); const t0 = performance.now();
      for (let sent = 0; sent < SINK; sent += 65536) if (!peer.send({ k: 'pong', seq: 1, data })) await peer.drained();
      await p; const s = (performance.now() - t0) / 1000; peer.off('frame', on);
      results[`64KiB transport GB/s ${rep}`] = (SINK / s / 1e9).toFixed(2); }
  }
  { // burst of small frames, one way: frames per second
    const n = 200000; const data = new Uint8Array(100); let done; const on = (f) => { if (f.k === 'pong') done(); }; peer.on('frame', on);
    for (let rep = 0; rep < 3; rep++) {
      const p = new Promise((r) => (done = r)); const t0 = performance.now();
      for (let i = 0; i < n; i++) { if (!peer.send({ k: 'pong', seq: i, data })) await peer.drained(); }
      await p; const s = (performance.now() - t0) / 1000;
      results[`burst 100 B frames/s ${rep}`] = `${(n / s / 1e6).toFixed(2)} M/s`;
    }
    peer.off('frame', on);
  }
  console.log(JSON.stringify(results, null, 1));
  child.kill(); await near.close(); rmSync(root, { recursive: true, force: true });
}
