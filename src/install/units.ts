import { LAYOUT, UNITS } from './layout.js';

/**
 * The two unit files. Each setting that confines a service carries its reason in the unit itself, where
 * an operator reading `systemctl cat` meets it.
 *
 * Both run as root: the server owns its data dir and needs no user of its own (root without
 * capabilities, in a read-only file system, can write only its data dir); the agent must be root. For a
 * root service the kernel hands the bounding set to the process, so no AmbientCapabilities= (that is
 * for a non-root User=).
 *
 * The agent gets no mount namespace. systemd's ProtectSystem=, ProtectHome=, PrivateTmp=,
 * ReadWritePaths=, PrivateDevices=, ProtectKernelTunables=/Modules=/Logs=, ProtectControlGroups= and
 * ProtectProc= all run a service in a namespace whose mounts never propagate back to the host (systemd.exec(5):
 * "may not be used for services which shall be able to install mount points in the main mount
 * namespace"). `ip netns add` is such a mount: it pins a tenant's namespace by bind-mounting it on
 * /run/netns/NAME. Tried here (unshare --mount --propagation slave, as systemd sets it up): the host then
 * sees an empty file, `ip netns exec` fails with "Invalid argument", and the namespace with every bridge
 * and veth in it dies with the agent's last process, so every restart would cut every container off.
 */

export interface ServerUnitOptions {
  listen: string;
}

export function renderServerUnit(o: ServerUnitOptions): string {
  return `${header(UNITS.server)}[Unit]
Description=Weft server: the control plane (REST API, address allocation, history)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=${LAYOUT.launcher} server --listen ${o.listen} --data-dir ${LAYOUT.dataDir}
# The first start prints the admin token on standard output (and keeps it in ${LAYOUT.dataDir}/admin.token, 0600):
# not into the journal, which more users may read. Its log is on standard error, and goes there.
StandardOutput=null
Restart=on-failure
${RESTART_SEC}
# Root without capabilities; the one privilege it may use is a port below 1024 (--listen :443).
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
# Everything read-only but the data dir (SQLite, CA, certificates, admin token, audit log); the agent's
# key beside it, when both run on this host, out of reach.
ProtectSystem=strict
StateDirectory=weft
StateDirectoryMode=0700
InaccessiblePaths=-${LAYOUT.stateDir}
# It runs as uid 0 and may use AF_UNIX: the sockets that make root of whoever talks to them (D-Bus, whose
# StartTransientUnit runs anything; systemd's private bus; Docker's API), the agent's socket and run dir,
# and root's secrets are out of its sight, so a compromised server cannot reach them ('-': if present).
InaccessiblePaths=${SERVER_HIDDEN.map((p) => `-${p}`).join(' ')}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectProc=invisible
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# AF_NETLINK: Node lists the host's addresses through it (the certificate of a wildcard --listen names them all).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
UMask=0077
# No MemoryDenyWriteExecute=: V8 writes the machine code it compiles JavaScript to, then runs it.

[Install]
WantedBy=multi-user.target
`;
}

/** The agent joins a server elsewhere (`join`: a token file, or none if it has joined before), or the server on this host. */
export type AgentUnitOptions =
  | { kind: 'remote'; server: string; joinFile?: string }
  | { kind: 'local'; server: string };

export function renderAgentUnit(o: AgentUnitOptions): string {
  const joinFile = o.kind === 'local' ? LAYOUT.localJoinToken : o.joinFile;
  const local = o.kind === 'local';
  return `${header(UNITS.agent)}[Unit]
Description=Weft agent: programs this host's container networks
Wants=network-online.target${local ? ` ${UNITS.server}` : ''}
After=network-online.target${local ? ` ${UNITS.server}` : ''}
# Runtimes that start containers at boot find the CNI and Docker plugins answering (and stop them first).
Before=docker.service podman-restart.service

[Service]
${local ? `# Joins the server on this host once (as \`weft up\` does): a join token asked of it with its admin token.
ExecStartPre=${LAYOUT.launcher} install local-join --server ${o.server} --data-dir ${LAYOUT.dataDir} --state-dir ${LAYOUT.stateDir} --join-file ${LAYOUT.localJoinToken}
` : ''}ExecStart=${LAYOUT.launcher} agent --server ${o.server} --state-dir ${LAYOUT.stateDir} --cni-bin-dir ${LAYOUT.cniBinDir}${joinFile !== undefined ? ` --join-file ${joinFile}` : ''}
Restart=on-failure
${RESTART_SEC}
# Stops the agent alone: bird (BGP) and wireguard-go were started to outlive it and the next agent adopts
# them; weft-nftd and weft-netwatch end with their input pipe. The datapath stays: containers keep their network.
KillMode=process
# CAP_NET_ADMIN: links, addresses, routes, nftables, tc, WireGuard, sysctls of its namespaces.
# CAP_SYS_ADMIN: makes and enters network namespaces (ip netns add/exec, nsenter), mounts to pin them.
# CAP_SYS_PTRACE: opens /proc/PID/ns/net of a container (a CNI runtime or \`weft attach\` may name one); the
#   kernel allows it only if the container's capabilities are a subset of the agent's (tried: refused without).
# CAP_NET_BIND_SERVICE: bird listens on TCP 179 for BGP peers of routed networks (tried: "bind: Permission denied" without).
# CAP_NET_RAW: bird keeps it (with the other CAP_NET_*) when it drops privileges itself; Weft's own code
#   opens no raw or packet socket.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_SYS_ADMIN CAP_SYS_PTRACE CAP_NET_BIND_SERVICE CAP_NET_RAW
NoNewPrivileges=yes
# No ProtectSystem=, ProtectHome=, PrivateTmp=, ReadWritePaths= or any other mount sandboxing: each runs the
# agent in a mount namespace whose mounts never reach the host, and \`ip netns add\` pins tenant namespaces
# with mounts (tried: the host sees an empty file, and the namespace dies with the agent).
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# Network namespaces for tenants, mount namespaces for \`ip netns exec\`; nothing else.
RestrictNamespaces=net mnt
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
# System calls neither the agent nor what it runs (ip, nft, tc, bird, wireguard-go) makes: rebooting or
# kexec, swap, obsolete calls, raw port I/O, CPU emulation, setting the clock, loading kernel modules (it
# loads none itself; the kernel's own autoloading is not a system call). Refused with EPERM, not killed.
SystemCallFilter=~@reboot @swap @obsolete @raw-io @cpu-emulation @clock @module
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`;
}

/** What weft-server.service cannot see (InaccessiblePaths=, each '-'-prefixed: missing is fine). */
export const SERVER_HIDDEN: readonly string[] = [
  '/run/dbus', '/run/systemd/private', '/run/docker.sock', '/var/run/docker.sock', '/run/weft', '/root', '/etc/shadow', '/etc/ssh',
];

function header(unit: string): string {
  return `# ${unit}: made by \`weft install --systemd\`, listed in ${LAYOUT.manifest}; \`weft uninstall\` removes it.\n`;
}

/**
 * systemd gives up on a unit after 5 starts in 10 s (StartLimitBurst=, StartLimitIntervalSec=); 5 s apart,
 * a service that cannot start yet (its server away, its port taken) keeps being retried.
 */
const RESTART_SEC = '# 5 s apart: never 5 starts in 10 s, after which systemd would stop retrying.\nRestartSec=5s';
