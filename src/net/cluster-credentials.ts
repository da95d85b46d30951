/**
 * The cluster's certificate authority and its nodes' credentials: what `norma cluster init` creates
 * and what a node loads to join the cluster (transport.ts uses them for mutual TLS).
 *
 * A cluster directory (mode 0700):
 *
 *   cluster.json               {"cluster": "c-<16 hex>", "name": ..., "created": <ISO date>}
 *   ca.key    (0600)           the CA's private key: whoever holds it can make nodes of the cluster
 *   ca.crt                     the CA certificate, self-signed, subject CN=<cluster id>, O=norma
 *   nodes/<name>.key (0600)    a node's private key
 *   nodes/<name>.crt           its certificate, signed by the CA: CN and DNS name = the node name,
 *                              for serverAuth and clientAuth (a node both accepts and dials)
 *
 * Why a CA of its own per cluster: being a member is holding a certificate it signed, checked by
 * TLS itself on both ends, so a node of another cluster or a client without a certificate never
 * reaches the wire protocol; and the name a node claims in its hello is checked against the CN its
 * certificate was issued to. Keys are ECDSA P-256 (fast handshakes, small certificates). The
 * certificates are made with @peculiar/x509 on WebCrypto, so no openssl binary is needed; loading
 * it costs about 180 ms, which only the commands that issue certificates pay (it is imported on
 * first use): loading credentials uses node:crypto alone.
 *
 * Files are PEM. A node may run with a copy of the directory without ca.key: it then cannot issue
 * certificates, only use the one it was given.
 */
import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { access, mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { NormaError } from '../errors.js';
import { isMissing, syncDirectory, writeFileAtomically } from '../snapshot/disk.js';
import { clusterIdPattern, nodeNamePattern } from './wire-protocol.js';

/** What cluster.json holds. */
export interface ClusterInfo {
  /** The cluster id: 'c-' and 16 hex digits, random. */
  cluster: string;
  /** A label for people (the id when none was given). */
  name: string;
  /** When the cluster was made (ISO 8601). */
  created: string;
}

/** What a node needs to join: PEM strings as tls.createSecureContext takes them. */
export interface NodeCredentials {
  cluster: string;
  node: string;
  /** The cluster CA certificate: the only issuer a node trusts. */
  ca: string;
  key: string;
  cert: string;
}

const clusterFile = z
  .object({
    cluster: z.string().regex(clusterIdPattern),
    name: z.string().min(1).max(128),
    created: z.string(),
  })
  .strict();

/** How long certificates are valid: rotating them is a re-issue, not a routine. */
const caValidityDays = 20 * 365;
const nodeValidityDays = 10 * 365;
const dayMs = 24 * 60 * 60 * 1000;

const ecdsa = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/**
 * Makes a new cluster in `dir` (created with mode 0700 if it does not exist): its id, CA key and CA
 * certificate. Refuses a directory that holds a cluster, or part of one (CLUSTER_EXISTS).
 */
export async function initCluster(dir: string, options: { name?: string } = {}): Promise<ClusterInfo> {
  const cluster = `c-${randomBytes(8).toString('hex')}`;
  const info = clusterFile.safeParse({
    cluster,
    name: options.name ?? cluster,
    created: new Date().toISOString(),
  });
  if (!info.success) throw new NormaError('USAGE', 'a cluster name has 1 to 128 characters');
  for (const file of ['cluster.json', 'ca.key', 'ca.crt']) {
    if (await exists(join(dir, file))) throw clusterExists(dir);
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const x509 = await loadX509();
  const keys = await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify']);
  const now = Date.now();
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=${cluster}, O=norma`,
    notBefore: new Date(now - dayMs),
    notAfter: new Date(now + caValidityDays * dayMs),
    keys,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  // Each file created exclusively, ca.key first: of two inits racing on one directory only one
  // succeeds. cluster.json comes last, so that its presence means a complete cluster.
  try {
    await createFile(join(dir, 'ca.key'), await privateKeyPem(keys.privateKey), 0o600);
    await createFile(join(dir, 'ca.crt'), ca.toString('pem'), 0o644);
    await createFile(join(dir, 'cluster.json'), `${JSON.stringify(info.data, null, 2)}\n`, 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw clusterExists(dir);
    throw error;
  }
  await syncDirectory(dir);
  return info.data;
}

/**
 * Issues (or issues again, replacing them) the key and certificate of node `nodeName`, signed by the
 * cluster CA: needs ca.key in `dir`.
 */
export async function issueNodeCredentials(dir: string, nodeName: string): Promise<void> {
  checkNodeName(nodeName);
  const info = await readClusterInfo(dir);
  const caPem = await readCredential(dir, 'ca.crt');
  const caKeyPem = await readCredential(dir, 'ca.key');
  const x509 = await loadX509();
  const caCert = new x509.X509Certificate(caPem);
  let caKey: CryptoKey;
  try {
    const der = createPrivateKey(caKeyPem).export({ format: 'der', type: 'pkcs8' });
    caKey = await webcrypto.subtle.importKey('pkcs8', der, ecdsa, false, ['sign']);
  } catch (error) {
    throw invalid(`${join(dir, 'ca.key')} is not an ECDSA P-256 private key`, error);
  }
  const keys = await webcrypto.subtle.generateKey(ecdsa, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${nodeName}, O=norma, OU=${info.cluster}`,
    issuer: caCert.subject,
    notBefore: new Date(now - dayMs),
    notAfter: new Date(now + nodeValidityDays * dayMs),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ecdsa,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: nodeName },
        { type: 'ip', value: '127.0.0.1' },
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  const nodes = join(dir, 'nodes');
  await mkdir(nodes, { recursive: true, mode: 0o700 });
  // Replaced by rename, the key before the certificate: a crash in between leaves a pair that
  // loadNodeCredentials refuses (CLUSTER_CREDENTIALS_INVALID), never a half-written file.
  const text = new TextEncoder();
  const keyPath = join(nodes, `${nodeName}.key`);
  await writeFileAtomically(keyPath, text.encode(await privateKeyPem(keys.privateKey)), nodes, 0o600);
  await writeFileAtomically(join(nodes, `${nodeName}.crt`), text.encode(cert.toString('pem')), nodes, 0o644);
}

/**
 * Reads node `nodeName`'s credentials from the cluster directory and checks them: the certificate
 * is the CA's, for this node name, and matches the key. With `issueIfMissing`, a node without a
 * certificate gets one issued when ca.key is in the directory.
 */
export async function loadNodeCredentials(
  dir: string,
  nodeName: string,
  options: { issueIfMissing?: boolean } = {},
): Promise<NodeCredentials> {
  checkNodeName(nodeName);
  const info = await readClusterInfo(dir);
  const ca = await readCredential(dir, 'ca.crt');
  const keyFile = join('nodes', `${nodeName}.key`);
  const certFile = join('nodes', `${nodeName}.crt`);
  let key = await readOptional(join(dir, keyFile));
  let cert = await readOptional(join(dir, certFile));
  if ((key === null || cert === null) && options.issueIfMissing === true) {
    if ((await readOptional(join(dir, 'ca.key'))) === null) {
      throw missing(`${dir} has no credentials for node ${nodeName}, and no ca.key to issue them with`);
    }
    await issueNodeCredentials(dir, nodeName);
    key = await readCredential(dir, keyFile);
    cert = await readCredential(dir, certFile);
  }
  if (key === null || cert === null) {
    throw missing(`${dir} has no ${key === null ? keyFile : certFile} for node ${nodeName}`);
  }
  checkCredentials(dir, info.cluster, nodeName, ca, key, cert);
  return { cluster: info.cluster, node: nodeName, ca, key, cert };
}

/** Reads and checks cluster.json. */
export async function readClusterInfo(dir: string): Promise<ClusterInfo> {
  const text = await readCredential(dir, 'cluster.json');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw invalid(`${join(dir, 'cluster.json')} is not JSON`, error);
  }
  const parsed = clusterFile.safeParse(value);
  if (!parsed.success) throw invalid(`${join(dir, 'cluster.json')} is not a cluster file`);
  return parsed.data;
}

function checkCredentials(dir: string, cluster: string, node: string, ca: string, key: string, cert: string) {
  let caCert: X509Certificate;
  let nodeCert: X509Certificate;
  try {
    caCert = new X509Certificate(ca);
    nodeCert = new X509Certificate(cert);
  } catch (error) {
    throw invalid(`a certificate of ${dir} does not parse`, error);
  }
  if (!caCert.ca || commonName(caCert) !== cluster) {
    throw invalid(`${join(dir, 'ca.crt')} is not the CA of cluster ${cluster}`);
  }
  if (!nodeCert.verify(caCert.publicKey)) {
    throw invalid(`the certificate of node ${node} was not issued by the CA of cluster ${cluster}`);
  }
  if (commonName(nodeCert) !== node) {
    throw invalid(`the certificate in nodes/${node}.crt was issued to ${commonName(nodeCert) ?? 'no name'}`);
  }
  let matches: boolean;
  try {
    matches = nodeCert.checkPrivateKey(createPrivateKey(key));
  } catch (error) {
    throw invalid(`nodes/${node}.key is not a private key`, error);
  }
  if (!matches) throw invalid(`nodes/${node}.key is not the key of nodes/${node}.crt`);
}

/** The CN of a certificate's subject (node:crypto gives the subject one attribute a line). */
function commonName(cert: X509Certificate): string | undefined {
  return cert.subject
    .split('\n')
    .find((line) => line.startsWith('CN='))
    ?.slice(3);
}

/** Refuses a name that cannot be a node's (USAGE). */
export function checkNodeName(nodeName: string): void {
  if (!nodeNamePattern.test(nodeName)) {
    throw new NormaError(
      'USAGE',
      `${JSON.stringify(nodeName)} is not a node name: lower-case letters, digits and -, at most 32`,
    );
  }
}

function missing(message: string): NormaError {
  return new NormaError('CLUSTER_CREDENTIALS_MISSING', message);
}

function invalid(message: string, cause?: unknown): NormaError {
  return new NormaError('CLUSTER_CREDENTIALS_INVALID', message, cause === undefined ? undefined : { cause });
}

function clusterExists(dir: string): NormaError {
  return new NormaError('CLUSTER_EXISTS', `${dir} already holds a cluster (or what is left of one)`);
}

async function readOptional(path: string): Promise<string | null> {
  return readFile(path, 'utf8').catch((error: unknown) => {
    if (isMissing(error)) return null;
    throw error;
  });
}

async function readCredential(dir: string, file: string): Promise<string> {
  const text = await readOptional(join(dir, file));
  if (text === null)
    throw missing(`${dir} has no ${file}: it is not a cluster directory (or not a whole one)`);
  return text;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Writes a file that must not exist yet (EEXIST if it does), and syncs it. */
async function createFile(path: string, data: string, mode: number): Promise<void> {
  const file = await open(path, 'wx', mode);
  try {
    await file.writeFile(data);
    await file.sync();
  } finally {
    await file.close();
  }
}

async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({
    format: 'pem',
    type: 'pkcs8',
  }) as string;
}

/** @peculiar/x509 needs a Reflect metadata polyfill, loaded before it. */
async function loadX509(): Promise<typeof import('@peculiar/x509')> {
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  return x509;
}
