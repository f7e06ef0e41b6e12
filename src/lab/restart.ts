import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnDaemon } from '../exec/index.js';
import { WeftError } from '../model/index.js';
import { readLab, type LabState } from './lab.js';

/** The lab's restartable daemons: an agent per host, the servers, the etcd members (by index from 0). */
export type LabRole = 'agent' | 'server' | 'etcd';

/** The pid the state file records for a daemon now. */
export function labPid(s: LabState, role: LabRole, i: number): number {
  const pid = role === 'agent' ? s.hosts[i]?.agentPid : role === 'server' ? (s.serverPids ?? [s.serverPid])[i] : s.etcdPids?.[i];
  if (!pid) throw new WeftError('WEFT_NOT_FOUND', `the lab has no ${role} ${i}`);
  return pid;
}

/**
 * Starts a lab daemon again with the argv it was first started with (its output appended to the same log)
 * and records the new pid, so `lab down` stops it. The caller has stopped (or killed) the old one. An
 * agent restarts without its join token: that was one-time, and the certificate it saved is what it uses.
 */
export function labRespawn(dir: string, role: LabRole, i: number): number {
  const s = readLab(dir);
  const d = s.daemons?.[`${role}${i}`];
  if (!d) throw new WeftError('WEFT_NOT_FOUND', `the lab did not record how it started ${role} ${i}`);
  const argv = [...d.argv];
  const flag = argv.indexOf('--join-file');
  if (role === 'agent' && flag >= 0) argv.splice(flag, 2);
  const pid = spawnDaemon(argv, d.log);
  if (role === 'agent') (s.hosts[i] as { agentPid: number }).agentPid = pid;
  else if (role === 'etcd') (s.etcdPids as number[])[i] = pid;
  else {
    if (s.serverPids) s.serverPids[i] = pid;
    if (i === 0) s.serverPid = pid;
  }
  writeFileSync(join(dir, 'state.json'), `${JSON.stringify(s, null, 2)}\n`, { mode: 0o600 });
  return pid;
}

