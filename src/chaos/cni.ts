import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessRunner } from '../exec/index.js';
import type { LabState } from '../lab/index.js';

export const runner = new ProcessRunner();

export interface CniAnswer { code: number; json: any; stdout: string }

export interface CniCall {
  conflist: string;
  id: string;
  netns: string;
  /** Overrides of the runtime's environment; undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** Sent instead of the conflist's entry (garbage). */
  stdin?: string;
  timeoutMs?: number;
}

/** The conflist's plugin entry as a runtime sends it. */
export function pluginConf(hostDir: string, conflist: string): Record<string, unknown> {
  const list = JSON.parse(readFileSync(join(hostDir, 'net.d', `${conflist}.conflist`), 'utf8'));
  return { ...list.plugins[0], cniVersion: list.cniVersion, name: list.name };
}

/**
 * Execs a lab host's installed plugin exactly as a runtime does (`env -i`: only the CNI variables and
 * PATH), with a deadline: a call the agent cannot answer must not hang the workload.
 */
export async function callCni(s: LabState, host: number, command: string, c: CniCall): Promise<CniAnswer> {
  const h = s.hosts[host];
  if (!h) throw new RangeError(`no host ${host}`);
  const env: Record<string, string | undefined> = {
    PATH: process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin', CNI_COMMAND: command, CNI_CONTAINERID: c.id, CNI_NETNS: c.netns,
    CNI_IFNAME: 'eth0', CNI_PATH: join(h.dir, 'bin'), CNI_ARGS: `IgnoreUnknown=1;K8S_POD_NAME=${c.id}`, ...(c.env ?? {}),
  };
  const pairs = Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const stdin = c.stdin ?? JSON.stringify(pluginConf(h.dir, c.conflist));
  const r = await runner.run(['env', '-i', ...pairs, join(h.dir, 'bin', 'weft')], { input: stdin, allowFailure: true, timeoutMs: c.timeoutMs ?? 45_000 });
  let json: any;
  try { json = r.stdout.trim() ? JSON.parse(r.stdout) : undefined; } catch { json = undefined; }
  return { code: r.code, json, stdout: r.stdout };
}
