import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate, createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { WeftError } from '../model/index.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86_400_000;
/** Certificates start a little in the past, so a host whose clock lags by a few minutes accepts them. */
export const BACKDATE_MS = 5 * 60_000;

/** A certificate and its private key, both PEM. */
export interface KeyPair { certPem: string; keyPem: string }

export interface CertSummary {
  serial: string;
  commonName: string;
  notBefore: Date;
  notAfter: Date;
  /** `sha256:` and the hex digest of the DER encoding. */
  fingerprint: string;
}

const serial = () => {
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f; // positive, as RFC 5280 asks
  return b.toString('hex');
};

async function newKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']) as Promise<CryptoKeyPair>;
}

async function keyToPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
}

async function pemToKey(pem: string): Promise<CryptoKey> {
  const der = createPrivateKey(pem).export({ format: 'der', type: 'pkcs8' });
  return webcrypto.subtle.importKey('pkcs8', der, ALG, false, ['sign']) as Promise<CryptoKey>;
}

/** A new CA: self-signed, may sign end-entity certificates only (path length 0). */
export async function createCa(commonName: string, days = 3650): Promise<KeyPair> {
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(), name: `CN=${commonName}`, keys, signingAlgorithm: ALG,
    notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

export interface IssueOptions {
  commonName: string;
  usage: 'server' | 'client';
  ttlMs: number;
  dnsNames?: readonly string[];
  ips?: readonly string[];
}

async function sign(ca: KeyPair, publicKey: x509.PublicKey | CryptoKey, o: IssueOptions): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const now = Date.now();
  const names = [...(o.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })), ...(o.ips ?? []).map((value) => ({ type: 'ip' as const, value }))];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(), subject: `CN=${o.commonName}`, issuer: caCert.subject, signingAlgorithm: ALG,
    signingKey: await pemToKey(ca.keyPem), publicKey,
    notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(Math.min(now + o.ttlMs, caCert.notAfter.getTime())),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([o.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
    ],
  });
  return cert.toString('pem');
}

/** A key pair made here and a certificate for it (the server's own certificate). */
export async function issueWithKey(ca: KeyPair, o: IssueOptions): Promise<KeyPair> {
  const keys = await newKeys();
  return { certPem: await sign(ca, keys.publicKey, o), keyPem: await keyToPem(keys.privateKey) };
}

/** A key pair and a certificate signing request for it; the key stays with the caller. */
export async function createCsr(commonName: string): Promise<{ csrPem: string; keyPem: string }> {
  const keys = await newKeys();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: `CN=${commonName}`, keys, signingAlgorithm: ALG });
  return { csrPem: csr.toString('pem'), keyPem: await keyToPem(keys.privateKey) };
}

/** Signs the key of a CSR whose signature verifies; the CSR's own subject is ignored. */
export async function signCsr(ca: KeyPair, csrPem: string, o: IssueOptions): Promise<string> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (e) {
    throw new WeftError('WEFT_INVALID_FIELD', 'csr: not a PEM certificate signing request', { field: 'csr', cause: e });
  }
  if (!(await csr.verify().catch(() => false))) {
    throw new WeftError('WEFT_INVALID_FIELD', 'csr: its signature does not verify (it must be signed by the key it asks a certificate for)', { field: 'csr' });
  }
  const alg = csr.publicKey.algorithm as { name?: string; namedCurve?: string };
  if (alg.name !== 'ECDSA' || alg.namedCurve !== 'P-256') {
    throw new WeftError('WEFT_INVALID_FIELD', 'csr: the key must be ECDSA P-256', { field: 'csr' });
  }
  return sign(ca, csr.publicKey, o);
}

/** Normalises a serial as Node reports it (uppercase hex, leading zeros kept) to ours. */
export const normalSerial = (s: string) => s.toLowerCase().replace(/^0+(?=.)/, '');

/** Serial, name, validity and fingerprint of a PEM certificate. */
export function summarize(certPem: string): CertSummary {
  const c = new X509Certificate(certPem);
  return {
    serial: normalSerial(c.serialNumber),
    commonName: /(?:^|\n)CN=([^\n]*)/.exec(c.subject)?.[1] ?? '',
    notBefore: new Date(c.validFrom),
    notAfter: new Date(c.validTo),
    fingerprint: fingerprint(certPem),
  };
}

/** `sha256:<hex>` of a certificate's DER encoding: what a join token pins. */
export function fingerprint(certPem: string): string {
  return `sha256:${createHash('sha256').update(new X509Certificate(certPem).raw).digest('hex')}`;
}

/** True if `certPem` was signed by `caPem` and is valid at `at`. */
export function issuedBy(certPem: string, caPem: string, at = new Date()): boolean {
  const c = new X509Certificate(certPem);
  const ca = new X509Certificate(caPem);
  return c.checkIssued(ca) && c.verify(ca.publicKey) && Date.parse(c.validFrom) <= at.getTime() && at.getTime() <= Date.parse(c.validTo);
}

/** When a certificate of ours should be renewed: two thirds into its real lifetime (the backdating left out). */
export function renewalTime(certPem: string): Date {
  const c = summarize(certPem);
  const issued = c.notBefore.getTime() + BACKDATE_MS;
  return new Date(issued + ((c.notAfter.getTime() - issued) * 2) / 3);
}
