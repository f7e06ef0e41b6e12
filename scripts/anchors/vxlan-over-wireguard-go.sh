#!/bin/bash
# Anchor for the encrypted overlay (issue 12): a hand-built copy of the path Weft's encrypted overlay takes,
# so `npm run bench:overlay` can hold Weft against it in the same run. Two "host" namespaces on a veth
# underlay (MTU 1500); in each a wireguard-go device (MTU 1440 = 1500 - 60, 100.64.0.N/16, port 51820, one
# peer); per host a "tenant" namespace with a bridge and a VXLAN device created from the host namespace (its
# UDP socket stays there, so VXLAN rides the tunnel) and a "container" namespace on the bridge (MTU 1390).
# Prints, each a median of three 4 s single-stream iperf3 runs (like src/bench/overlay.ts):
#   wireguard-go tunnel alone: Z Gbit/s                 host to host through the tunnel
#   vxlan overlay (plain) across two hosts: Y Gbit/s    same tenant path, VXLAN on the underlay (MTU 1450)
#   vxlan over wireguard-go across two hosts: X Gbit/s  container to container, VXLAN inside WireGuard
#   df ping at MTU 1390: ok|FAILED                      1362-byte DF ping, no IP fragment made on a host
# Per-run figures and wireguard-go CPU go to stderr. Exit 1 if anything printed FAILED.
# Knobs for experiments (the defaults are the path Weft should build): ANCHOR_UNDERLAY_MTU=1500,
# ANCHOR_WG_MTU (default underlay - 60); the overlay MTU follows as WG MTU - 50.
# Needs root, iproute2, wireguard-go, wireguard-tools, iperf3, python3. Run under the shared lock:
#   flock /work/e2e.lock bash scripts/anchors/vxlan-over-wireguard-go.sh
# Two machines, modelled on two cores: host 1's wireguard-go and the iperf3 client run on CPU 0, host 2's
# wireguard-go and the iperf3 server on CPU 1 (taskset; one core if the machine has one), each in its own
# session (setsid). bench:overlay places Weft's the same way. Without a placement the figures depend on
# which processes share a session: the kernel's autogroup scheduling makes each session one scheduling
# group, and a wireguard-go in the iperf3s' session ran a third faster than in its own
# (docs/benchmarks.md, bench:overlay, session 6).
# Measured 2026-11-28, 2 shared cores (PVM guest, kernel 6.18), Debian wireguard-go 0.0.20220316:
#   own sessions (now):   vxlan over wireguard-go 0.21-0.22 Gbit/s; in one run tunnel alone 0.26, plain 10.8
#   one shared session:   vxlan over wireguard-go 0.15-0.33 Gbit/s (0.30 in quiet runs), tunnel alone
#                         0.16-0.36, plain 4.1-10.7 (load 3-6 from other builds in the early runs)
#   df ping at MTU 1390: ok in every run; no clear VNI 42 frame on the underlay (tcpdump: only port 51820)
#   ANCHOR_UNDERLAY=bridge (the lab's shape) cost 0-7 % against the veth pair in two interleaved runs.
# What limits it: per-packet cost. Each wireguard-go takes 45-75 % of a core, ~70 % of that in syscalls
# (one TUN read/write and one UDP send/receive per packet; this wireguard-go has no TUN GSO/GRO and no
# sendmmsg batching), the machine is 170-200 % busy.
# Other settings (vxlan over wireguard-go, A/B rotation of a variant of this script, 2 rounds each, one
# shared session):
# TUN MTU 8940 on a 9000 underlay 0.53-0.56 vs 0.16-0.18 at 1440 (~3x: fewer packets); 1280 a little
# slower; TUN MTU 1500 on a 1500 underlay fragments every full packet (df check FAILED, slower). No
# measurable change from GRO on the underlay veth, GRO/GSO off on the TUN, TUN txqueuelen 5000, or VXLAN
# noudpcsum; TSO and checksum offload cannot be turned on on its TUN (opened without IFF_VNET_HDR).
# More knobs: ANCHOR_UNDERLAY=veth|bridge (default veth), ANCHOR_MEASURE=all|wg (wg: only the last two lines).
set -euo pipefail
umask 077
UL_MTU=${ANCHOR_UNDERLAY_MTU:-1500}
# Checked before any arithmetic: bash evaluates a variable's text inside $(( )), commands included.
[[ $UL_MTU =~ ^[0-9]{3,5}$ ]] || { echo "ANCHOR_UNDERLAY_MTU must be a number of bytes, got '$UL_MTU'" >&2; exit 2; }
case ${ANCHOR_UNDERLAY:-veth} in veth|bridge) ;; *) echo "ANCHOR_UNDERLAY must be veth or bridge, got '$ANCHOR_UNDERLAY'" >&2; exit 2;; esac
case ${ANCHOR_MEASURE:-all} in all|wg) ;; *) echo "ANCHOR_MEASURE must be all or wg, got '$ANCHOR_MEASURE'" >&2; exit 2;; esac
WG_MTU=${ANCHOR_WG_MTU:-$((UL_MTU - 60))}
[[ $WG_MTU =~ ^[0-9]{3,5}$ ]] || { echo "ANCHOR_WG_MTU must be a number of bytes, got '$WG_MTU'" >&2; exit 2; }
CPU=([1]=0 [2]=$(( $(nproc) > 1 ? 1 : 0 ))) # each host's core
OV_MTU=$((WG_MTU - 50)) # VXLAN over IPv4 adds 50 bytes
PL_MTU=$((UL_MTU - 50))
# Every name carries the pid: wireguard-go's control socket (/var/run/wireguard/NAME.sock) is not
# separated by network namespaces, so two runs (or Weft's own wg devices) must never share a device name.
P=wv$$
RUNDIR=/var/run/wireguard
RUNDIR_OURS=0; [ -d $RUNDIR ] || RUNDIR_OURS=1
KEYS=$(mktemp -d /tmp/wv-keys.XXXXXX)
PIDS=()
declare -A WG=()
STATUS=0

cleanup() {
  set +e; trap - EXIT INT TERM
  local p n
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  # Anything else still running in our namespaces (a stray ping or iperf3) keeps the netns alive.
  for n in h1 h2 t1 t2 c1 c2 p1 p2 d1 d2 sw; do
    for p in $(ip netns pids $P$n 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
  done
  for n in h1 h2 t1 t2 c1 c2 p1 p2 d1 d2 sw; do ip netns del $P$n 2>/dev/null; done
  rm -rf "$KEYS"
  rm -f $RUNDIR/${P}w1.sock $RUNDIR/${P}w2.sock
  [ $RUNDIR_OURS = 1 ] && rmdir $RUNDIR 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Two hosts joined by a veth underlay, 192.0.2.1 and .2: one veth pair, or (ANCHOR_UNDERLAY=bridge) a
# veth from each host to a bridge in a switch namespace, the shape of Weft's test lab.
make_hosts() {
  ip netns add ${P}h1; ip netns add ${P}h2
  if [ "${ANCHOR_UNDERLAY:-veth}" = bridge ]; then
    ip netns add ${P}sw; ip -n ${P}sw link add br0 type bridge; ip -n ${P}sw link set br0 up
    for i in 1 2; do
      ip link add ${P}u$i netns ${P}h$i mtu $UL_MTU type veth peer name s$i netns ${P}sw mtu $UL_MTU
      ip -n ${P}sw link set s$i master br0 up
    done
  else
    ip link add ${P}u1 netns ${P}h1 mtu $UL_MTU type veth peer name ${P}u2 netns ${P}h2 mtu $UL_MTU
  fi
  for i in 1 2; do
    ip -n ${P}h$i addr add 192.0.2.$i/24 dev ${P}u$i
    ip -n ${P}h$i link set ${P}u$i up; ip -n ${P}h$i link set lo up
  done
}

# A wireguard-go device in host $1, waited for until its control socket answers.
start_wg() {
  local i=$1 dev=${P}w$1 n
  wg genkey >"$KEYS/k$i"; wg pubkey <"$KEYS/k$i" >"$KEYS/p$i"
  # On its host's core, in its own session (see the header). setsid and taskset exec in place (this
  # script leads no process group), so $! is wireguard-go itself.
  ip netns exec ${P}h$i setsid taskset -c ${CPU[$i]} env WG_PROCESS_FOREGROUND=1 wireguard-go -f $dev >"$KEYS/log$i" 2>&1 &
  PIDS+=($!); WG[$i]=$!
  for n in $(seq 50); do [ -S $RUNDIR/$dev.sock ] && return 0; sleep 0.1; done
  echo "wireguard-go $dev did not start: $(cat "$KEYS/log$i")" >&2; return 1
}

# Host $1's tunnel: its key, the other host as the one peer, the tunnel address and MTU.
config_wg() {
  local i=$1 o=$((3 - $1)) dev=${P}w$1
  ip netns exec ${P}h$i wg set $dev listen-port 51820 private-key "$KEYS/k$i" \
    peer "$(cat "$KEYS/p$o")" endpoint 192.0.2.$o:51820 allowed-ips 100.64.0.$o/32
  ip -n ${P}h$i addr add 100.64.0.$i/16 dev $dev
  ip -n ${P}h$i link set $dev mtu $WG_MTU up
}

# tenant HOST TENANT_NS CONTAINER_NS LOCAL REMOTE MTU VNI ADDR: bridge + VXLAN in the tenant namespace, the
# VXLAN device made from the host namespace so its socket (and so its route to REMOTE) stays in the host.
# Both tenants of a host share that one UDP socket on 4789, so the plain path takes VNI 43, not 42.
tenant() {
  local h=${P}h$1 t=$2 c=$3
  ip netns add $t; ip netns add $c
  ip -n $t link set lo up; ip -n $c link set lo up
  ip -n $t link add br0 mtu $6 type bridge
  ip -n $h link add vx0 netns $t mtu $6 type vxlan id $7 local $4 dstport 4789 nolearning
  bridge -n $t fdb append 00:00:00:00:00:00 dev vx0 dst $5 self permanent
  ip link add eth0 netns $c mtu $6 type veth peer name p0 netns $t mtu $6
  # Bridged frames skip IP netfilter, as in Weft's tenants (br_netfilter, when loaded, defaults to 1:
  # it cost this path ~10 % in an A/B run: 0.28 against 0.31 Gbit/s).
  ip netns exec $t sysctl -qw net.bridge.bridge-nf-call-iptables=0 net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0 2>/dev/null || true
  ip -n $t link set vx0 master br0 up; ip -n $t link set p0 master br0 up; ip -n $t link set br0 up
  ip -n $c addr add $8/24 dev eth0; ip -n $c link set eth0 up
}

# Wait (up to 10 s) until $1 reaches $2: the first packet also makes the WireGuard handshake.
reach() {
  local n
  for n in $(seq 10); do ip netns exec $1 ping -c1 -W1 -q $2 >/dev/null 2>&1 && return 0; done
  echo "no ping from $1 to $2" >&2; return 1
}

# CPU ticks (user + system) of a pid, and busy ticks of the whole machine (everyone's work, not only ours).
ticks() { local s; s=$(cat /proc/$1/stat); s=${s##*) }; set -- $s; echo $((${12} + ${13})); }
busy() {
  local c u n s idle iow irq sirq st rest
  read -r c u n s idle iow irq sirq st rest </proc/stat; echo $((u + n + s + irq + sirq + st))
}

# gbps SERVER_NS CLIENT_NS ADDR LABEL: median of three 4 s streams into GBPS ("FAILED" if a run failed),
# per-run figures and wireguard-go's share of a core during the runs on stderr.
gbps() {
  local srv runs=() r k w1 w2 b t0 t1
  # The server on host 2's core, the client on host 1's, each in its own session.
  ip netns exec $1 setsid taskset -c ${CPU[2]} iperf3 -s -p 5201 >/dev/null 2>&1 &
  srv=$!; PIDS+=($srv)
  sleep 0.5
  w1=$(ticks ${WG[1]}); w2=$(ticks ${WG[2]}); b=$(busy); t0=$(date +%s%N)
  for k in 1 2 3; do
    r=$(timeout --foreground 30 ip netns exec $2 setsid taskset -c ${CPU[1]} iperf3 -c $3 -p 5201 -t 4 -J --connect-timeout 3000 2>/dev/null |
      python3 -c 'import json,sys; print("%.3f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"] / 1e9))' \
      2>/dev/null) || r=FAILED
    runs+=("$r")
  done
  t1=$(date +%s%N)
  local per=$(( $(getconf CLK_TCK) * (t1 - t0) / 1000000000 )) # ticks of one core in the time measured
  echo "# $4: runs ${runs[*]} Gbit/s; wireguard-go CPU h1 $(( ($(ticks ${WG[1]}) - w1) * 100 / per ))%" \
    "h2 $(( ($(ticks ${WG[2]}) - w2) * 100 / per ))% of a core; machine busy $(( ($(busy) - b) * 100 / per ))% of $(nproc)00%" >&2
  kill $srv 2>/dev/null; wait $srv 2>/dev/null || true
  if [[ " ${runs[*]} " == *" FAILED "* ]]; then GBPS=FAILED; STATUS=1; return; fi
  GBPS=$(printf '%s\n' "${runs[@]}" | sort -g | sed -n 2p)
}

# IP fragments made in both host namespaces: a DF ping through the overlay must not make any.
frags() {
  local i
  for i in 1 2; do
    ip netns exec ${P}h$i awk '/^Ip:/ { if (!c) { for (i = 1; i <= NF; i++) if ($i == "FragCreates") c = i } else print $c }' /proc/net/snmp
  done | awk '{ n += $1 } END { print n }'
}

echo "# load average before the run: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)" >&2
make_hosts
start_wg 1; start_wg 2
config_wg 1; config_wg 2
tenant 1 ${P}t1 ${P}c1 100.64.0.1 100.64.0.2 $OV_MTU 42 10.77.0.1
tenant 2 ${P}t2 ${P}c2 100.64.0.2 100.64.0.1 $OV_MTU 42 10.77.0.2
tenant 1 ${P}p1 ${P}d1 192.0.2.1 192.0.2.2 $PL_MTU 43 10.78.0.1
tenant 2 ${P}p2 ${P}d2 192.0.2.2 192.0.2.1 $PL_MTU 43 10.78.0.2
reach ${P}h1 100.64.0.2; reach ${P}c1 10.77.0.2; reach ${P}d1 10.78.0.2

if [ "${ANCHOR_MEASURE:-all}" = all ]; then
  gbps ${P}h2 ${P}h1 100.64.0.2 "wireguard-go tunnel alone"
  echo "wireguard-go tunnel alone: $GBPS Gbit/s"
  gbps ${P}d2 ${P}d1 10.78.0.2 "vxlan overlay (plain)"
  echo "vxlan overlay (plain) across two hosts: $GBPS Gbit/s"
fi
gbps ${P}c2 ${P}c1 10.77.0.2 "vxlan over wireguard-go"
echo "vxlan over wireguard-go across two hosts: $GBPS Gbit/s"

f0=$(frags)
if ip netns exec ${P}c1 ping -M do -s $((OV_MTU - 28)) -c 3 -i 0.2 -W 2 -q 10.77.0.2 >/dev/null 2>&1 && [ "$(frags)" = "$f0" ]; then
  echo "df ping at MTU $OV_MTU: ok"
else
  echo "df ping at MTU $OV_MTU: FAILED"; STATUS=1
fi
exit $STATUS
