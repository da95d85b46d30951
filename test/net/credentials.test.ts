import { strict as assert } from 'node:assert';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isNormaError } from '../../src/errors.js';
import {
  initCluster,
  issueNodeCredentials,
  loadNodeCredentials,
  readClusterInfo,
} from '../../src/net/cluster-credentials.js';

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

describe('cluster credentials', () => {
  let root: string;
  let dir: string;
  let other: string;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'norma-credentials-'));
    dir = join(root, 'cluster');
    other = join(root, 'other');
    await initCluster(dir, { name: 'test' });
    await initCluster(other);
  });

  after(() => rmSync(root, { recursive: true, force: true }));

  it('init makes a private directory with the cluster id, a private CA key and a CA certificate naming the cluster', async () => {
    const info = await readClusterInfo(dir);
    assert.match(info.cluster, /^c-[0-9a-f]{16}$/);
    assert.equal(info.name, 'test');
    assert.ok(!Number.isNaN(Date.parse(info.created)));
    assert.equal(mode(dir), 0o700);
    assert.equal(mode(join(dir, 'ca.key')), 0o600);
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    assert.ok(ca.ca);
    assert.match(ca.subject, new RegExp(`CN=${info.cluster}`));
    assert.ok(ca.verify(ca.publicKey), 'self-signed');
    assert.notEqual((await readClusterInfo(other)).cluster, info.cluster);
  });

  it('init refuses a directory that holds a cluster, and leaves it as it was', async () => {
    const key = readFileSync(join(dir, 'ca.key'));
    const info = readFileSync(join(dir, 'cluster.json'));
    await assert.rejects(initCluster(dir), (error) => isNormaError(error, 'CLUSTER_EXISTS'));
    assert.deepEqual(readFileSync(join(dir, 'ca.key')), key);
    assert.deepEqual(readFileSync(join(dir, 'cluster.json')), info);
  });

  it('issues a node a private key and a certificate from the CA, for TLS server and client, named after it', async () => {
    await issueNodeCredentials(dir, 'n1');
    assert.equal(mode(join(dir, 'nodes', 'n1.key')), 0o600);
    const cert = new X509Certificate(readFileSync(join(dir, 'nodes', 'n1.crt')));
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    assert.ok(cert.verify(ca.publicKey));
    assert.ok(cert.checkIssued(ca));
    assert.ok(!cert.ca);
    assert.match(cert.subject, /^CN=n1$/m);
    assert.match(cert.subjectAltName ?? '', /DNS:n1/);
    assert.deepEqual([...(cert.keyUsage ?? [])].sort(), ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    const loaded = await loadNodeCredentials(dir, 'n1');
    assert.equal(loaded.cluster, (await readClusterInfo(dir)).cluster);
    assert.equal(loaded.node, 'n1');
    assert.equal(loaded.cert, readFileSync(join(dir, 'nodes', 'n1.crt'), 'utf8'));
  });

  it('load issues the missing credentials of a node only when asked and the CA key is there', async () => {
    await assert.rejects(loadNodeCredentials(dir, 'n2'), (error) =>
      isNormaError(error, 'CLUSTER_CREDENTIALS_MISSING'),
    );
    const issued = await loadNodeCredentials(dir, 'n2', { issueIfMissing: true });
    assert.equal(issued.node, 'n2');
    assert.equal(mode(join(dir, 'nodes', 'n2.key')), 0o600);

    // A node's copy of the directory without ca.key cannot issue.
    const copy = join(root, 'copy');
    await initCluster(copy);
    unlinkSync(join(copy, 'ca.key'));
    await assert.rejects(loadNodeCredentials(copy, 'n1', { issueIfMissing: true }), (error) =>
      isNormaError(error, 'CLUSTER_CREDENTIALS_MISSING'),
    );
  });

  it('load refuses what is not a cluster directory, or credentials that do not belong together', async () => {
    await assert.rejects(loadNodeCredentials(join(root, 'nowhere'), 'n1'), (error) =>
      isNormaError(error, 'CLUSTER_CREDENTIALS_MISSING'),
    );
    await assert.rejects(loadNodeCredentials(dir, 'Not_A_Name'), (error) => isNormaError(error, 'USAGE'));

    // A certificate of another cluster's CA.
    await issueNodeCredentials(other, 'n3');
    copyFileSync(join(other, 'nodes', 'n3.key'), join(dir, 'nodes', 'n3.key'));
    copyFileSync(join(other, 'nodes', 'n3.crt'), join(dir, 'nodes', 'n3.crt'));
    await assert.rejects(loadNodeCredentials(dir, 'n3'), (error) =>
      isNormaError(error, 'CLUSTER_CREDENTIALS_INVALID'),
    );

    // A key that is not the certificate's; a certificate issued to another node.
    await issueNodeCredentials(dir, 'n4');
    copyFileSync(join(dir, 'nodes', 'n1.key'), join(dir, 'nodes', 'n4.key'));
    await assert.rejects(loadNodeCredentials(dir, 'n4'), (error) =>
      isNormaError(error, 'CLUSTER_CREDENTIALS_INVALID'),
    );
    copyFileSync(join(dir, 'nodes', 'n1.key'), join(dir, 'nodes', 'n5.key'));
    copyFileSync(join(dir, 'nodes', 'n1.crt'), join(dir, 'nodes', 'n5.crt'));
    await assert.rejects(loadNodeCredentials(dir, 'n5'), (error) =>
      isNormaError(error, 'CLUSTER_CREDENTIALS_INVALID'),
    );
  });
});
