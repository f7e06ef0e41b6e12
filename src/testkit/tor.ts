import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Runner } from '../exec/index.js';
import type { Lab } from './lab.js';

/** The outside machine's addresses (behind the router, on a /30 and a /64 of their own). */
export const OUTSIDE = { ip: '198.51.100.2', ip6: 'fd98::2' } as const;

export interface Tor {
  /** The router's namespace and its address on the hosts' underlay. */
  ns: string;
  ip: string;
  /** Bird's routes in the router's table, of one family. */
  routes(family: '-4' | '-6'): Promise<string>;
  /** Stops bird by its pid and removes the router's and the outside machine's namespaces. */
  stop(): Promise<void>;
}

/**
 * A top-of-rack router for a lab (routed networks): a namespace with one leg on the hosts' underlay bridge
 * and one to an "outside" namespace (`${tag}-out`, OUTSIDE), running bird as AS 64512 with an eBGP session
 * to every host (AS 64513) that learns and re-announces everything. Hosts route the outside through it.
 * `six`: the underlay's IPv6 /64 prefix (the lab's `underlay6`; the router takes `${six}1`): the outside
 * gets IPv6 too and each session an ipv6 channel.
 */
export async function startTor(runner: Runner, lab: Lab, six?: string): Promise<Tor> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-tor-'));
  const ip = `${lab.hosts[0]!.vtep.split('.').slice(0, 3).join('.')}.1`;
  const ns = `${lab.tag}-tor`;
  const out = `${lab.tag}-out`;
  let bird: ChildProcess | undefined;
  const stop = async () => {
    bird?.kill('SIGKILL');
    for (const n of [ns, out]) await runner.run(['ip', 'netns', 'del', n], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (const n of [ns, out]) await runner.run(['ip', 'netns', 'add', n]);
    await runner.run(['ip', 'link', 'add', `${lab.tag}T`, 'netns', `${lab.tag}-ul`, 'type', 'veth', 'peer', 'name', 'fabric', 'netns', ns]);
    await runner.run(['ip', '-n', `${lab.tag}-ul`, 'link', 'set', `${lab.tag}T`, 'master', 'br0', 'up']);
    await runner.run(['ip', 'link', 'add', 'outside', 'netns', ns, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', out]);
    await runner.run(['ip', '-n', ns, '-batch', '-'], {
      input: [`link set lo up`, `addr add ${ip}/24 dev fabric`, ...(six ? [`addr add ${six}1/64 dev fabric nodad`] : []), 'link set fabric up',
        'addr add 198.51.100.1/30 dev outside', ...(six ? ['addr add fd98::1/64 dev outside nodad'] : []), 'link set outside up', ''].join('\n'),
    });
    await runner.run(['ip', '-n', out, '-batch', '-'], {
      input: ['link set lo up', `addr add ${OUTSIDE.ip}/30 dev eth0`, ...(six ? [`addr add ${OUTSIDE.ip6}/64 dev eth0 nodad`] : []), 'link set eth0 up',
        'route add default via 198.51.100.1', ...(six ? ['route add default via fd98::1'] : []), ''].join('\n'),
    });
    await runner.run(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', ...(six ? ['net.ipv6.conf.all.forwarding=1'] : [])]);
    // Hosts reach the outside through their router, as a rack's hosts do.
    for (const h of lab.hosts) {
      await runner.run(['ip', '-n', h.ns, 'route', 'add', '198.51.100.0/30', 'via', ip]);
      if (six) await runner.run(['ip', '-n', h.ns, 'route', 'add', 'fd98::/64', 'via', `${six}1`]);
    }
    const conf = join(dir, 'tor.conf');
    const channels = `ipv4 { import all; export all; };${six ? ' ipv6 { import all; export all; };' : ''}`;
    writeFileSync(conf, [
      `router id ${ip};`, 'protocol device { scan time 10; }',
      'protocol kernel { ipv4 { import none; export all; }; merge paths on; }',
      ...(six ? ['protocol kernel { ipv6 { import none; export all; }; merge paths on; }'] : []),
      ...lab.hosts.map((h, i) => `protocol bgp h${i + 1} { local ${ip} as 64512; neighbor ${h.vtep} as 64513; hold time 3; keepalive time 1; connect retry time 1; ${channels} }`),
    ].join('\n'));
    bird = spawn('ip', ['netns', 'exec', ns, 'bird', '-f', '-c', conf, '-s', join(dir, 'tor.ctl')], { stdio: 'ignore' });
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    ns, ip, stop,
    routes: async (family) => (await runner.run(['ip', '-n', ns, family, 'route', 'show', 'proto', 'bird'], { allowFailure: true })).stdout,
  };
}
