import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Runner } from '../exec/index.js';
import { CliError, EXIT, usage } from './errors.js';

/** What `weft attach` / `weft detach` act on: a network namespace, and the id its endpoints carry. */
export interface Target {
  netns: string;
  containerId: string;
  /** Its DNS name, when it has one a container name may be. */
  name?: string;
  /** How it was found, for messages: `podman container web`, `namespace /run/netns/x`. */
  what: string;
}

export const RUNTIMES = ['auto', 'podman', 'docker', 'netns'] as const;
export type RuntimeChoice = (typeof RUNTIMES)[number];

const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
/** What podman and docker accept as a container name or id (and nothing a flag could be read from). */
const CONTAINER_REF = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;

interface Inspected {
  Id?: string;
  Name?: string;
  State?: { Running?: boolean; Status?: string };
  NetworkSettings?: { SandboxKey?: string };
}

/** A bare network namespace: a file (a bind mount) or a name under /run/netns; its id is the namespace's inode. */
export function namespaceTarget(ref: string): Target | undefined {
  const path = ref.startsWith('/') ? ref : `/run/netns/${ref}`;
  if (!ref.startsWith('/') && (!CONTAINER_NAME.test(ref) || !existsSync(path))) return undefined;
  // Refused by the request's own check, with why (model/attach-request.ts); reading it may not even be allowed.
  if (path.startsWith('/proc/')) return { netns: path, containerId: 'netns-proc', what: `namespace ${path}` };
  let ino: number;
  try {
    ino = statSync(path).ino;
  } catch (e) {
    throw new CliError(`${ref}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`, EXIT.notFound);
  }
  const name = basename(path);
  return { netns: resolve(path), containerId: `netns-${ino}`, ...(CONTAINER_NAME.test(name) ? { name } : {}), what: `namespace ${path}` };
}

/** A container as podman's or docker's `inspect` describes it (JSON), or why it cannot be attached. */
export function containerTarget(runtime: 'podman' | 'docker', ref: string, inspectJson: string): Target {
  let c: Inspected | undefined;
  try {
    c = (JSON.parse(inspectJson) as Inspected[])[0];
  } catch {
    throw new CliError(`${runtime} inspect ${ref} printed something that is not JSON`, EXIT.failed);
  }
  const name = (c?.Name ?? '').replace(/^\//, '');
  const what = `${runtime} container ${name || ref}`;
  if (!c?.Id || !/^[0-9a-f]{12,128}$/.test(c.Id)) throw new CliError(`${what}: ${runtime} gave no container id`, EXIT.failed);
  if (c.State?.Running !== true) throw new CliError(`${what} is not running (${c.State?.Status ?? 'state unknown'}): only a running container has a network namespace`, EXIT.conflict);
  const key = c.NetworkSettings?.SandboxKey ?? '';
  if (!key.startsWith('/')) {
    throw new CliError(`${what} has no network namespace of its own that ${runtime} pins (its SandboxKey is empty: --network host, none or container:...); run it on a network, or give a namespace`, EXIT.conflict);
  }
  return { netns: key, containerId: c.Id, ...(CONTAINER_NAME.test(name) ? { name } : {}), what };
}

/**
 * Finds TARGET: a namespace path or name under /run/netns first (unless a runtime is named), else a
 * podman or Docker container (DOCKER_HOST and podman's own settings apply, as for their CLIs). A name
 * both runtimes know is refused: --runtime says which.
 */
export async function findTarget(runner: Runner, ref: string, runtime: RuntimeChoice): Promise<Target> {
  if (!ref.startsWith('/') && !CONTAINER_REF.test(ref)) throw usage(`TARGET: '${ref.slice(0, 80)}' is neither a path nor a container or namespace name`);
  if (runtime === 'netns' || (runtime === 'auto' && ref.startsWith('/'))) {
    const t = namespaceTarget(ref);
    if (!t) throw new CliError(`namespace ${ref}: no /run/netns/${ref}`, EXIT.notFound);
    return t;
  }
  if (runtime === 'auto') {
    const ns = namespaceTarget(ref);
    if (ns) return ns;
  }
  const found: Target[] = [];
  const missing: string[] = [];
  for (const rt of runtime === 'auto' ? (['podman', 'docker'] as const) : [runtime]) {
    const argv = rt === 'podman' ? ['podman', 'container', 'inspect', '--format', 'json', ref] : ['docker', 'container', 'inspect', ref];
    const r = await runner.run(argv, { allowFailure: true, timeoutMs: 20_000 }).catch((e: Error) => ({ code: -1, stdout: '', stderr: /ENOENT/.test(e.message) ? `${rt} is not installed` : e.message }));
    if (r.code === 0) found.push(containerTarget(rt, ref, r.stdout));
    else missing.push(`${rt}: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 200) || `exit ${r.code}`}`);
  }
  if (found.length > 1) throw usage(`${ref} is a container of both podman and docker; say which with --runtime podman or --runtime docker`);
  const [t] = found;
  if (!t) throw new CliError(`no namespace or container ${ref} (${missing.join('; ')})`, EXIT.notFound);
  return t;
}
