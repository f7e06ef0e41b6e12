import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';

export interface KeyPair { cert: string; key: string }
export interface TestPki { ca: string; server: KeyPair; clients: Record<string, KeyPair> }

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/**
 * A throw-away CA in `dir` (files 0600 by openssl's default umask for keys), a server certificate for
 * 127.0.0.1/localhost and one client certificate per common name, made with openssl through the runner.
 */
export async function makeTestPki(dir: string, clientNames: string[]): Promise<TestPki> {
  const run = new ProcessRunner();
  const f = (name: string) => join(dir, name);
  await run.run(['openssl', 'req', '-x509', ...EC, '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '2', '-subj', '/CN=weft-test-ca']);
  const issue = async (name: string, cn: string, ext: string): Promise<KeyPair> => {
    writeFileSync(f(`${name}.ext`), ext);
    await run.run(['openssl', 'req', ...EC, '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', `/CN=${cn}`]);
    await run.run(['openssl', 'x509', '-req', '-in', f(`${name}.csr`), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial',
      '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`)]);
    return { cert: f(`${name}.crt`), key: f(`${name}.key`) };
  };
  const server = await issue('server', 'etcd', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n');
  const clients: Record<string, KeyPair> = {};
  for (const cn of clientNames) clients[cn] = await issue(`client-${cn}`, cn, 'extendedKeyUsage=clientAuth\n');
  return { ca: f('ca.crt'), server, clients };
}
