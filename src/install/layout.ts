/**
 * Where an install puts things, as the target system sees them (an install under `--root DIR` writes
 * them below DIR). Fixed, not options: these are the paths `weft server`, `weft agent` and the CLI
 * already default to (the CLI reads DATA_DIR/admin.token and ca.crt on the server's host), and the
 * paths CNI runtimes look in.
 */
export const LAYOUT = {
  unitDir: '/etc/systemd/system',
  launcher: '/usr/local/bin/weft',
  configDir: '/etc/weft',
  /** A join token given to `weft install --join`: read by the agent with --join-file, never on a command line. */
  joinToken: '/etc/weft/join.token',
  manifest: '/etc/weft/install.json',
  dataDir: '/var/lib/weft',
  stateDir: '/var/lib/weft/agent',
  /** The token the local join asks the local server for: state, like the certificate it becomes. */
  localJoinToken: '/var/lib/weft/agent/join.token',
  /** One plugin directory, the one every CNI runtime searches (podman, containerd, CRI-O); /usr/lib/cni is the distribution's. */
  cniBinDir: '/opt/cni/bin',
  cniConfDir: '/etc/cni/net.d',
} as const;

export const UNITS = { server: 'weft-server.service', agent: 'weft-agent.service' } as const;

/** `weft server`'s own default; a server other hosts join needs --listen 0.0.0.0:9700 or its address. */
export const DEFAULT_LISTEN = '127.0.0.1:9700';
