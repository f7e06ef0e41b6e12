/*
 * weft-netwatch: tells the agent which network namespaces someone changed, so that a resync checks only
 * those instead of re-reading every tenant's links, forwarding entries and tables every two seconds.
 *
 * Standard input, one command a line: "+NAME" watches /run/netns/NAME ("+." the namespace the helper
 * started in), "*PATH" watches only the flow records of the namespace file PATH (a macvlan endpoint's
 * container, whose own table logs them; no other event of it is told but `gone`), "-NAME" or "-PATH"
 * stops (answered "unwatched NAME" once its sockets are closed: they pin the namespace, so the agent
 * waits for that before deleting it). Standard output, one event a line:
 *   gen NAME INODE GENERATION  the namespace's nftables ruleset generation, at first and when it moves;
 *   link NAME                  a link, an IPv4 address, a permanent neighbour or FDB entry, or a qdisc
 *                              changed (at most once a tick), or events were lost (ENOBUFS);
 *   gone NAME                  the namespace was deleted or replaced; watched again when it reappears;
 *   flow NAME V PROTO SRC SPORT DST DPORT
 *                              a new connection's verdict, logged by the tenant's table to NFLOG group
 *                              FLOW_GROUP (flows-nft.ts): V is the log prefix's letter (a allowed, d
 *                              denied, w allowed but an audit-mode policy would deny), PROTO the IP
 *                              protocol number, ports 0 for protocols without them;
 *   flowlost NAME COUNT        records the kernel could not queue to us (our socket's buffer was full);
 *   flowheld NAME COUNT        connections the tables' rate limits kept from being logged since the last
 *                              such line (its named counter FLOW_HELD moved);
 *   trafficbegin NAME          every TRAFFIC_EVERY_TICKS, a reading of a tenant namespace's veths starts;
 *   traffic NAME IFNAME IFINDEX RXB RXP TXB TXP
 *                              per endpoint veth (tenant side, named we...), its counters: bytes and
 *                              packets it received (what the container sent) and transmitted (what the
 *                              container received);
 *   trafficdone NAME           the reading completed, uninterrupted (a veth not in it is gone).
 * It exits when its standard input closes (the agent ended).
 *
 * weft-netwatch NETNS_PATH... (once, what weft-nftgen did): prints for each namespace file given (e.g.
 * /run/netns/NAME, or /proc/self/ns/net) one line "INODE GENERATION", or "- -" when it cannot be read:
 * the agent's reading of a namespace before the watcher has reported it, or without the watcher.
 *
 * Why polling for nftables: subscribing to NFNLGRP_NFTABLES makes the kernel build an event per set
 * element of every write (a big table's replace took 3x as long with `nft monitor` listening), while the
 * generation, asked four times a second over a socket held open, costs two syscalls. Links and addresses
 * are rtnetlink multicast groups, which only our own changes and real drift fill; dynamic neighbours and
 * learned FDB entries (every ARP, every new MAC) are filtered out here, since the agent owns none.
 */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <linux/netlink.h>
#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define TICK_MS 250
#define MAX_NS 4096
#define MAX_NAME 128
/* IFNAMSIZ with room to spare: a name longer than the kernel's is cut, then refused by endpoint_veth. */
#define IFNAMSIZ_MAX 32
/* The NFLOG group the tenant tables log new connections to (FLOW_LOG_GROUP in flows-nft.ts). */
#define FLOW_GROUP 8
/* Bytes of each logged packet copied to us (SNAPLEN in flows-nft.ts): an IPv4 header with options and the
 * ports, or an IPv6 header, 84 bytes of extension headers and the ports. */
#define FLOW_COPY 128
/* The named counter of connections the limits kept from being logged (FLOW_HELD in flows-nft.ts), in the
 * tables inet weft (routed, and bridged when the tenant filters) and bridge weft (bridged otherwise). */
#define FLOW_HELD "flowheld"
/* The inet family (linux/netfilter.h clashes with the libc headers). */
#ifndef NFPROTO_INET
#define NFPROTO_INET 1
#endif
#define FLOW_TABLE "weft"
#ifndef NFPROTO_BRIDGE
#define NFPROTO_BRIDGE 7
#endif
static const int held_family[2] = { NFPROTO_INET, NFPROTO_BRIDGE };
/* The held-back counter is read while records came within this long, once every so many ticks (a second). */
#define HELD_WINDOW_MS 3000
#define HELD_EVERY_TICKS 4
/* Ticks (of TICK_MS) between readings of the endpoint veths' counters (10 s). */
#define TRAFFIC_EVERY_TICKS 40
/* Ticks (of TICK_MS) between attempts to bind a namespace's flow socket that failed. */
#define FLOW_RETRY_TICKS 40

struct ns {
  char name[MAX_NAME];
  int flows_only;          /* "*PATH": a container's namespace, for its flow records alone */
  unsigned long long first_ino; /* flows_only: the namespace it was first opened as (0 not yet) */
  int rt, nf;              /* rtnetlink (subscribed) and nfnetlink (GETGEN) sockets; -1 when closed */
  int fl;                  /* nfnetlink_log bound to FLOW_GROUP; -1 when closed or the group is taken */
  int ls;                  /* rtnetlink, not subscribed: link dumps for the veths' counters; -1 when closed */
  unsigned seq_dump;       /* the last dump's sequence number */
  unsigned long long lost; /* flow records lost since the last tick */
  long long seq;           /* the last record's sequence number, -1 none yet */
  int flow_retry;          /* ticks until the flow socket is tried again, when it could not be bound */
  long long held[2];       /* FLOW_HELD's packets at the last reading, per table (held_family), -1 none yet */
  long long flow_at;       /* when the last record came (monotonic ms), 0 none */
  unsigned long long ino;  /* the namespace's inode while open */
  long long gen;           /* last generation reported, -1 none */
  int dirty;               /* an rtnetlink event since the last tick */
};

static long long now_ms(void);
static long long held_count(int s, int family);

static struct ns *watched[MAX_NS];
static int nwatched;
static int self_fd;

/* A name as `ip netns` makes them, or "." for our own namespace: no '/' and no "..", ever. */
static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= MAX_NAME) return 0;
  if (strcmp(s, ".") == 0) return 1;
  if (s[0] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return 0;
  }
  return 1;
}

/* A namespace file's absolute path (a runtime's bind mount): letters, digits, '/', '_', '.', '-'; no "..". */
static int valid_path(const char *s) {
  size_t n = strlen(s);
  if (n < 2 || n >= MAX_NAME || s[0] != '/' || strstr(s, "..") != NULL) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '-' || c == '_' || c == '.')) return 0;
  }
  return 1;
}

static void path_of(const struct ns *w, char *out, size_t len) {
  if (w->name[0] == '/') snprintf(out, len, "%s", w->name);
  else if (strcmp(w->name, ".") == 0) snprintf(out, len, "/proc/self/ns/net");
  else snprintf(out, len, "/run/netns/%s", w->name);
}

static void close_ns(struct ns *w) {
  if (w->rt >= 0) close(w->rt);
  if (w->nf >= 0) close(w->nf);
  if (w->fl >= 0) close(w->fl);
  if (w->ls >= 0) close(w->ls);
  w->rt = w->nf = w->fl = w->ls = -1;
  w->ino = 0;
  w->gen = -1;
  w->seq = -1;
  w->held[0] = w->held[1] = -1;
}

/* One NFULNL_MSG_CONFIG request with one attribute, answered by an ack; 0 or -1 with errno set. */
static int flow_config(int s, uint16_t type, const void *data, uint16_t len) {
  char buf[64] __attribute__((aligned(4)));
  memset(buf, 0, sizeof buf);
  struct nlmsghdr *nh = (struct nlmsghdr *)buf;
  nh->nlmsg_type = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;
  nh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
  struct nfgenmsg *g = NLMSG_DATA(nh);
  g->nfgen_family = AF_UNSPEC;
  g->version = NFNETLINK_V0;
  g->res_id = htons(FLOW_GROUP);
  struct nlattr *a = (struct nlattr *)((char *)buf + NLMSG_LENGTH(sizeof *g));
  a->nla_type = type;
  a->nla_len = NLA_HDRLEN + len;
  memcpy((char *)a + NLA_HDRLEN, data, len);
  nh->nlmsg_len = NLMSG_LENGTH(sizeof *g) + NLA_ALIGN(a->nla_len);
  static uint32_t seq;
  nh->nlmsg_seq = ++seq;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  if (sendto(s, buf, nh->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) return -1;
  /* The ack, skipping anything else queued first (records logged since the bind). */
  for (int tries = 0; tries < 64; tries++) {
    char reply[8192] __attribute__((aligned(4)));
    ssize_t n = recv(s, reply, sizeof reply, 0);
    if (n < 0) return -1;
    for (struct nlmsghdr *r = (struct nlmsghdr *)reply; NLMSG_OK(r, (size_t)n); r = NLMSG_NEXT(r, n)) {
      if (r->nlmsg_type != NLMSG_ERROR || r->nlmsg_seq != seq || r->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) continue;
      int err = ((struct nlmsgerr *)NLMSG_DATA(r))->error;
      if (err != 0) return errno = -err, -1;
      return 0;
    }
  }
  return errno = EPROTO, -1;
}

/* Binds the socket to FLOW_GROUP: packets copied up to FLOW_COPY bytes, queued at most 100 ms. */
static int flow_bind(int s) {
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
  if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0) return -1;
  struct nfulnl_msg_config_cmd cmd = { .command = NFULNL_CFG_CMD_BIND };
  struct nfulnl_msg_config_mode mode = { .copy_range = htonl(FLOW_COPY), .copy_mode = NFULNL_COPY_PACKET };
  uint32_t timeout = htonl(10), qthresh = htonl(64);
  /* Each record numbered: a gap is records the kernel dropped when our buffer was full. */
  uint16_t flags = htons(NFULNL_CFG_F_SEQ);
  if (flow_config(s, NFULA_CFG_CMD, &cmd, sizeof cmd) != 0 || flow_config(s, NFULA_CFG_MODE, &mode, sizeof mode) != 0 ||
      flow_config(s, NFULA_CFG_TIMEOUT, &timeout, sizeof timeout) != 0 || flow_config(s, NFULA_CFG_QTHRESH, &qthresh, sizeof qthresh) != 0 ||
      flow_config(s, NFULA_CFG_FLAGS, &flags, sizeof flags) != 0) return -1;
  int big = 1 << 20;
  setsockopt(s, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  return fcntl(s, F_SETFL, O_NONBLOCK);
}

/* One logged packet as a `flow` line; anything not an IPv4 or IPv6 packet with our prefix is skipped. */
static void flow_record(struct ns *w, const struct nlmsghdr *nh) {
  if (nh->nlmsg_type != ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET)) return;
  const unsigned char *payload = NULL;
  size_t plen = 0;
  char verdict = 0;
  size_t off = NLMSG_LENGTH(sizeof(struct nfgenmsg));
  while (off + sizeof(struct nlattr) <= nh->nlmsg_len) {
    const struct nlattr *a = (const struct nlattr *)((const char *)nh + off);
    if (a->nla_len < sizeof(struct nlattr) || off + a->nla_len > nh->nlmsg_len) return;
    const char *data = (const char *)a + NLA_HDRLEN;
    size_t len = a->nla_len - NLA_HDRLEN;
    int type = a->nla_type & NLA_TYPE_MASK;
    if (type == NFULA_SEQ && len >= 4) {
      uint32_t v;
      memcpy(&v, data, 4);
      long long seq = ntohl(v);
      /* A gap larger than a socket buffer could ever hold is not a loss we can count (a restart, or noise). */
      if (w->seq >= 0 && seq > w->seq + 1 && seq - w->seq - 1 < 1000000) w->lost += (unsigned long long)(seq - w->seq - 1);
      w->seq = seq;
    } else if (type == NFULA_PAYLOAD) {
      payload = (const unsigned char *)data;
      plen = len;
    } else if (type == NFULA_PREFIX && len >= 7 && memcmp(data, "weft-", 5) == 0 && (data[5] == 'a' || data[5] == 'd' || data[5] == 'w') && data[6] == ' ') {
      verdict = data[5];
    }
    off += NLA_ALIGN(a->nla_len);
  }
  if (!verdict || !payload || plen < 1) return;
  unsigned proto = 0, sport = 0, dport = 0;
  size_t l4 = 0;
  int first = 0;
  char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
  if ((payload[0] >> 4) == 4 && plen >= 20) {
    l4 = (size_t)(payload[0] & 15) * 4;
    if (l4 < 20 || l4 > plen) return;
    proto = payload[9];
    /* Ports only from the first fragment. */
    first = (((payload[6] & 0x1f) << 8) | payload[7]) == 0;
    inet_ntop(AF_INET, payload + 12, src, sizeof src);
    inet_ntop(AF_INET, payload + 16, dst, sizeof dst);
  } else if ((payload[0] >> 4) == 6 && plen >= 40) {
    proto = payload[6];
    l4 = 40;
    first = 1;
    /* Past extension headers (hop-by-hop, routing, destination options: 8-octet units; AH: 4-octet
     * units, plus 2; fragment: 8 octets, ports only in the first fragment) to the protocol, as the kernel
     * goes; what the copy cuts off has no ports (port 0: the server leaves such a record unexplained). */
    for (int hops = 0; hops < 8 && (proto == 0 || proto == 43 || proto == 60 || proto == 44 || proto == 51); hops++) {
      if (plen < l4 + 8) { first = 0; break; }
      if (proto == 44) {
        if (((payload[l4 + 2] << 8 | payload[l4 + 3]) & 0xfff8) != 0) first = 0;
        proto = payload[l4];
        l4 += 8;
      } else if (proto == 51) {
        proto = payload[l4];
        l4 += ((size_t)payload[l4 + 1] + 2) * 4;
      } else {
        proto = payload[l4];
        l4 += ((size_t)payload[l4 + 1] + 1) * 8;
      }
    }
    inet_ntop(AF_INET6, payload + 8, src, sizeof src);
    inet_ntop(AF_INET6, payload + 24, dst, sizeof dst);
  } else {
    return;
  }
  /* Ports of a protocol that has them at the start of its header. */
  if (first && (proto == 6 || proto == 17 || proto == 132 || proto == 136) && plen >= l4 + 4) {
    sport = (unsigned)(payload[l4] << 8 | payload[l4 + 1]);
    dport = (unsigned)(payload[l4 + 2] << 8 | payload[l4 + 3]);
  }
  printf("flow %s %c %u %s %u %s %u\n", w->name, verdict, proto, src, sport, dst, dport);
  w->flow_at = now_ms();
}

/* Reads at most this many datagrams per namespace per wakeup: a namespace that never stops sending
 * (a container's, whose owner may send to our socket) cannot keep the others from their ticks. */
#define FLOW_READS_MAX 64

static void flow_drain(struct ns *w) {
  char buf[65536] __attribute__((aligned(4)));
  for (int reads = 0; reads < FLOW_READS_MAX; reads++) {
    struct sockaddr_nl from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(w->fl, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
    if (n < 0) {
      /* The kernel dropped records for want of room in our buffer: the sequence numbers' gap counts them. */
      if (errno == EINTR || errno == ENOBUFS) continue;
      return;
    }
    if (n == 0) return;
    /* Only the kernel's: a process of that namespace could send to our port id too. */
    if (fromlen < sizeof from || from.nl_family != AF_NETLINK || from.nl_pid != 0) continue;
    for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) flow_record(w, nh);
  }
}

/* Opens both sockets inside the namespace (a socket stays in the namespace it was made in). */
static int open_ns(struct ns *w) {
  char path[MAX_NAME + 16];
  path_of(w, path, sizeof path);
  int fd = strcmp(w->name, ".") == 0 ? dup(self_fd) : open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  struct stat st;
  int ok = fstat(fd, &st) == 0;
  /* A container's path is watched for the namespace it named first: once gone, whatever the path names
   * later (a reused /proc path, another container) is not it; and never the helper's own namespace. */
  if (ok && w->flows_only) {
    struct stat self;
    if ((w->first_ino != 0 && (unsigned long long)st.st_ino != w->first_ino) || (fstat(self_fd, &self) == 0 && self.st_ino == st.st_ino)) ok = 0;
  }
  ok = ok && setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  if (!ok) return -1;
  if (w->flows_only && w->first_ino == 0) w->first_ino = (unsigned long long)st.st_ino;
  w->rt = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  w->nf = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
  /* Flow records come from tenant namespaces only (the host's table logs none). */
  if (strcmp(w->name, ".") != 0) w->fl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (strcmp(w->name, ".") != 0 && !w->flows_only) w->ls = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  w->flow_retry = 0;
  if (setns(self_fd, CLONE_NEWNET) != 0) {
    perror("weft-netwatch: setns back");
    exit(2);
  }
  /* Our own namespace (the host's) only for its tables: its links are every container's and not ours. */
  /* A container's (flows only): its links are its own business. */
  unsigned groups = strcmp(w->name, ".") == 0 || w->flows_only ? 0 : RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_NEIGH | RTMGRP_TC;
  struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = groups };
  if (w->rt < 0 || w->nf < 0 || bind(w->rt, (struct sockaddr *)&sa, sizeof sa) != 0) {
    close_ns(w);
    return -1;
  }
  int big = 1 << 20;
  setsockopt(w->rt, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
  w->ino = (unsigned long long)st.st_ino;
  /* What the counter holds already (from before this helper) is not news. */
  for (int t = 0; t < 2; t++) {
    long long held = held_count(w->nf, held_family[t]);
    w->held[t] = held >= 0 ? held : -1;
  }
  if (w->fl >= 0 && flow_bind(w->fl) != 0) {
    fprintf(stderr, "weft-netwatch: %s: NFLOG group %d: %s (no flow records from it; tried again every %d s)\n", w->name, FLOW_GROUP, strerror(errno), FLOW_RETRY_TICKS * TICK_MS / 1000);
    close(w->fl);
    w->fl = -1;
    w->flow_retry = FLOW_RETRY_TICKS;
  }
  return 0;
}

/* A namespace open but without its flow socket (the group was taken, or binding failed): tried again now and then. */
static void flow_reopen(struct ns *w) {
  if (w->fl >= 0 || w->rt < 0 || strcmp(w->name, ".") == 0 || --w->flow_retry > 0) return;
  char path[MAX_NAME + 16];
  path_of(w, path, sizeof path);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  int ok = setns(fd, CLONE_NEWNET) == 0;
  close(fd);
  if (!ok) return;
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (setns(self_fd, CLONE_NEWNET) != 0) {
    perror("weft-netwatch: setns back");
    exit(2);
  }
  if (s >= 0 && flow_bind(s) == 0) {
    w->fl = s;
    w->seq = -1;
    return;
  }
  if (s >= 0) close(s);
  w->flow_retry = FLOW_RETRY_TICKS;
}

/* The namespace's ruleset generation (NFT_MSG_GETGEN), or -1. */
static long long generation(int s) {
  struct { struct nlmsghdr nh; struct nfgenmsg g; } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.g.nfgen_family = AF_UNSPEC;
  req.g.version = NFNETLINK_V0;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  if (sendto(s, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)sizeof req) return -1;
  char buf[512] __attribute__((aligned(4)));
  /* The kernel answers within sendto: the reply is queued already, so this never waits. */
  ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
  struct nlmsghdr *nh = (struct nlmsghdr *)buf;
  if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nfgenmsg)) || !NLMSG_OK(nh, (size_t)n) || nh->nlmsg_type == NLMSG_ERROR) return -1;
  long long gen = -1;
  size_t off = NLMSG_LENGTH(sizeof(struct nfgenmsg));
  while (off + sizeof(struct nlattr) <= nh->nlmsg_len) {
    struct nlattr *a = (struct nlattr *)((char *)nh + off);
    if (a->nla_len < sizeof(struct nlattr) || off + a->nla_len > nh->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NFTA_GEN_ID && a->nla_len >= NLA_HDRLEN + 4) {
      uint32_t v;
      memcpy(&v, (char *)a + NLA_HDRLEN, 4);
      gen = ntohl(v);
    }
    off += NLA_ALIGN(a->nla_len);
  }
  return gen;
}

static size_t put_attr(char *at, uint16_t type, const void *data, uint16_t len) {
  struct nlattr *a = (struct nlattr *)at;
  a->nla_type = type;
  a->nla_len = NLA_HDRLEN + len;
  memcpy(at + NLA_HDRLEN, data, len);
  return NLA_ALIGN(a->nla_len);
}

/* FLOW_HELD's packet count in the namespace's table of that family (NFT_MSG_GETOBJ); -2 when there is no
 * such table or counter (records off, or not logged there), -1 when it could not be read. */
static long long held_count(int s, int family) {
  char req[256] __attribute__((aligned(4)));
  memset(req, 0, sizeof req);
  struct nlmsghdr *nh = (struct nlmsghdr *)req;
  nh->nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETOBJ;
  nh->nlmsg_flags = NLM_F_REQUEST;
  struct nfgenmsg *g = NLMSG_DATA(nh);
  g->nfgen_family = (uint8_t)family;
  g->version = NFNETLINK_V0;
  size_t off = NLMSG_LENGTH(sizeof *g);
  uint32_t type = htonl(NFT_OBJECT_COUNTER);
  off += put_attr(req + off, NFTA_OBJ_TABLE, FLOW_TABLE, sizeof FLOW_TABLE);
  off += put_attr(req + off, NFTA_OBJ_NAME, FLOW_HELD, sizeof FLOW_HELD);
  off += put_attr(req + off, NFTA_OBJ_TYPE, &type, sizeof type);
  nh->nlmsg_len = (uint32_t)off;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  if (sendto(s, req, off, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)off) return -1;
  char buf[1024] __attribute__((aligned(4)));
  ssize_t n = recv(s, buf, sizeof buf, MSG_DONTWAIT);
  struct nlmsghdr *r = (struct nlmsghdr *)buf;
  if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && NLMSG_OK(r, (size_t)n) && r->nlmsg_type == NLMSG_ERROR &&
      ((struct nlmsgerr *)NLMSG_DATA(r))->error == -ENOENT) return -2;
  if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nfgenmsg)) || !NLMSG_OK(r, (size_t)n) || r->nlmsg_type == NLMSG_ERROR) return -1;
  for (size_t at = NLMSG_LENGTH(sizeof(struct nfgenmsg)); at + sizeof(struct nlattr) <= r->nlmsg_len;) {
    struct nlattr *a = (struct nlattr *)((char *)r + at);
    if (a->nla_len < sizeof(struct nlattr) || at + a->nla_len > r->nlmsg_len) break;
    if ((a->nla_type & NLA_TYPE_MASK) == NFTA_OBJ_DATA) {
      for (size_t in = NLA_HDRLEN; in + sizeof(struct nlattr) <= a->nla_len;) {
        struct nlattr *c = (struct nlattr *)((char *)a + in);
        if (c->nla_len < sizeof(struct nlattr) || in + c->nla_len > a->nla_len) break;
        if ((c->nla_type & NLA_TYPE_MASK) == NFTA_COUNTER_PACKETS && c->nla_len >= NLA_HDRLEN + 8) {
          uint64_t v;
          memcpy(&v, (char *)c + NLA_HDRLEN, 8);
          return (long long)be64toh(v);
        }
        in += NLA_ALIGN(c->nla_len);
      }
    }
    at += NLA_ALIGN(a->nla_len);
  }
  return -1;
}

/* Whether one rtnetlink message is something the agent converges (not traffic's own bookkeeping). */
static int relevant(const struct nlmsghdr *nh) {
  if (nh->nlmsg_type == RTM_NEWNEIGH || nh->nlmsg_type == RTM_DELNEIGH) {
    if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct ndmsg))) return 0;
    const struct ndmsg *nd = NLMSG_DATA(nh);
    /* The agent's VXLAN neighbours and forwarding entries are permanent; ARP and learning are not. */
    return (nd->ndm_family == AF_INET || nd->ndm_family == AF_INET6 || nd->ndm_family == AF_BRIDGE) && (nd->ndm_state & NUD_PERMANENT);
  }
  return nh->nlmsg_type >= RTM_BASE && nh->nlmsg_type != NLMSG_DONE;
}

static void drain(struct ns *w) {
  char buf[16384] __attribute__((aligned(4)));
  for (;;) {
    ssize_t n = recv(w->rt, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      /* Events were lost: something changed, we cannot say what. */
      if (errno == ENOBUFS) w->dirty = 1;
      if (errno == EINTR || errno == ENOBUFS) continue;
      return;
    }
    if (n == 0) return;
    for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
      if (relevant(nh)) w->dirty = 1;
    }
  }
}

/* An endpoint veth's name as the agent makes them (names.endpointVeth): "we" and hex digits. */
static int endpoint_veth(const char *s) {
  if (strncmp(s, "we", 2) != 0 || strlen(s) < 3 || strlen(s) > 15) return 0;
  for (const char *c = s + 2; *c; c++) if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'))) return 0;
  return 1;
}

/* Reads what is queued on the dump socket without waiting: the rest of an earlier dump that failed part way (a new one is refused while it runs). */
static void traffic_drain(struct ns *w) {
  static char junk[16384] __attribute__((aligned(4)));
  while (recv(w->ls, junk, sizeof junk, MSG_DONTWAIT) > 0) {
  }
}

/*
 * The endpoint veths' counters in a tenant namespace: one RTM_GETLINK dump, "trafficbegin", a "traffic"
 * line each (with its ifindex: a veth made again under its name has another), then "trafficdone" only if
 * the dump completed and the kernel did not mark it interrupted (links changed under it: one may have
 * been skipped). Never waits: a netlink dump is produced inside each recv.
 */
static void traffic(struct ns *w) {
  if (w->ls < 0) return;
  traffic_drain(w);
  struct { struct nlmsghdr nh; struct ifinfomsg ifi; } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = RTM_GETLINK;
  req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  req.nh.nlmsg_seq = ++w->seq_dump;
  req.ifi.ifi_family = AF_UNSPEC;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  if (sendto(w->ls, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) != (ssize_t)sizeof req) return;
  printf("trafficbegin %s\n", w->name);
  static char buf[65536] __attribute__((aligned(4)));
  int interrupted = 0;
  for (;;) {
    ssize_t n = recv(w->ls, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) return; /* failed part way: no "trafficdone", the next reading will do */
    for (struct nlmsghdr *nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, (size_t)n); nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_seq != w->seq_dump) continue; /* what is left of an earlier dump */
      if (nh->nlmsg_flags & NLM_F_DUMP_INTR) interrupted = 1;
      if (nh->nlmsg_type == NLMSG_ERROR) return;
      if (nh->nlmsg_type == NLMSG_DONE) {
        if (!interrupted) printf("trafficdone %s\n", w->name);
        return;
      }
      if (nh->nlmsg_type != RTM_NEWLINK || nh->nlmsg_len < NLMSG_LENGTH(sizeof(struct ifinfomsg))) continue;
      const struct ifinfomsg *ifi = NLMSG_DATA(nh);
      char name[IFNAMSIZ_MAX] = "";
      /* Older kernels send a shorter struct (fields were added at its end): what is missing stays 0. */
      struct rtnl_link_stats64 st;
      memset(&st, 0, sizeof st);
      int have = 0;
      size_t off = NLMSG_LENGTH(sizeof(struct ifinfomsg));
      while (off + sizeof(struct rtattr) <= nh->nlmsg_len) {
        struct rtattr *a = (struct rtattr *)((char *)nh + off);
        if (a->rta_len < sizeof(struct rtattr) || off + a->rta_len > nh->nlmsg_len) break;
        size_t len = a->rta_len - RTA_LENGTH(0);
        if (a->rta_type == IFLA_IFNAME && len > 0 && len <= sizeof name) {
          memcpy(name, RTA_DATA(a), len);
          name[len - 1] = 0;
        } else if (a->rta_type == IFLA_STATS64 && len >= 4 * sizeof(uint64_t)) {
          memcpy(&st, RTA_DATA(a), len < sizeof st ? len : sizeof st);
          have = 1;
        }
        off += RTA_ALIGN(a->rta_len);
      }
      if (have && endpoint_veth(name)) {
        printf("traffic %s %s %d %llu %llu %llu %llu\n", w->name, name, ifi->ifi_index, (unsigned long long)st.rx_bytes, (unsigned long long)st.rx_packets,
               (unsigned long long)st.tx_bytes, (unsigned long long)st.tx_packets);
      }
    }
  }
}

static struct ns *find(const char *name) {
  for (int i = 0; i < nwatched; i++) if (strcmp(watched[i]->name, name) == 0) return watched[i];
  return NULL;
}

static void command(char *line) {
  size_t n = strlen(line);
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
  int path = n >= 2 && valid_path(line + 1);
  if (n < 2 || (line[0] != '+' && line[0] != '-' && line[0] != '*') || (line[0] == '*' ? !path : line[0] == '+' ? !valid_name(line + 1) : !(path || valid_name(line + 1)))) {
    fprintf(stderr, "weft-netwatch: ignored a malformed command\n");
    return;
  }
  struct ns *w = find(line + 1);
  if (line[0] == '-') {
    if (w) {
      close_ns(w);
      for (int i = 0; i < nwatched; i++) if (watched[i] == w) watched[i] = watched[--nwatched];
      free(w);
    }
    printf("unwatched %s\n", line + 1);
    return;
  }
  if (w || nwatched >= MAX_NS) return;
  w = calloc(1, sizeof *w);
  if (!w) return;
  /* valid_name and valid_path bound the length below MAX_NAME. */
  memcpy(w->name, line + 1, strlen(line + 1) + 1);
  w->flows_only = line[0] == '*';
  w->rt = w->nf = w->fl = w->ls = -1;
  w->gen = -1;
  w->seq = -1;
  w->held[0] = w->held[1] = -1;
  /* The first tick reports its generation; a namespace not there yet is opened when it appears. */
  w->dirty = 0;
  watched[nwatched++] = w;
}

static unsigned long ticks;

/* Per namespace: still the same one? its generation moved? any event? */
static void tick(void) {
  ticks++;
  for (int i = 0; i < nwatched; i++) {
    struct ns *w = watched[i];
    char path[MAX_NAME + 16];
    path_of(w, path, sizeof path);
    struct stat st;
    if (w->rt >= 0 && strcmp(w->name, ".") != 0 && (stat(path, &st) != 0 || (unsigned long long)st.st_ino != w->ino)) {
      close_ns(w);
      printf("gone %s\n", w->name);
    }
    if (w->rt < 0) {
      if (open_ns(w) != 0) continue;
      w->dirty = 1;
    }
    drain(w);
    flow_reopen(w);
    long long gen = w->flows_only ? -1 : generation(w->nf);
    if (gen >= 0 && gen != w->gen) {
      w->gen = gen;
      printf("gen %s %llu %lld\n", w->name, w->ino, gen);
    }
    if (w->dirty) printf("link %s\n", w->name);
    w->dirty = 0;
    if (w->ls >= 0 && ticks % TRAFFIC_EVERY_TICKS == (unsigned long)i % TRAFFIC_EVERY_TICKS) traffic(w);
    if (w->lost) printf("flowlost %s %llu\n", w->name, w->lost);
    w->lost = 0;
    /* Only while records come: the limits hold back only what comes beside records they let through
     * (each source's first ones, the table's first 500 a second), so an idle namespace costs nothing. */
    if (w->fl >= 0 && w->flow_at > 0 && now_ms() - w->flow_at < HELD_WINDOW_MS && ticks % HELD_EVERY_TICKS == 0) {
      long long moved = 0;
      for (int t = 0; t < 2; t++) {
        long long held = held_count(w->nf, held_family[t]);
        /* Gone (a table replaced without it): the next one counts from zero. */
        if (held == -2) w->held[t] = -1;
        if (held < 0) continue;
        /* Counted from the last reading; from zero for a counter made since (a table made or replaced). */
        long long base = w->held[t] >= 0 && held >= w->held[t] ? w->held[t] : 0;
        moved += held - base;
        w->held[t] = held;
      }
      if (moved > 0) printf("flowheld %s %lld\n", w->name, moved);
    }
  }
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The one-shot form: every path is opened before the first setns (/proc/self/ns/net is where we are now). */
static int once(int argc, char **argv) {
  int fds[argc];
  for (int i = 1; i < argc; i++) fds[i] = open(argv[i], O_RDONLY | O_CLOEXEC);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    long long gen = -1;
    if (fds[i] >= 0 && fstat(fds[i], &st) == 0 && setns(fds[i], CLONE_NEWNET) == 0) {
      int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
      if (s >= 0) gen = generation(s);
      if (s >= 0) close(s);
    }
    if (gen < 0) printf("- -\n");
    else printf("%llu %lld\n", (unsigned long long)st.st_ino, gen);
    if (fds[i] >= 0) close(fds[i]);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1) return once(argc, argv);
  /* If the agent dies without closing our input (it cannot: the pipe closes with it), still go. */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  /* Up to four sockets per namespace, thousands of namespaces: as many descriptors as we may have. */
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
  self_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  if (self_fd < 0) {
    perror("weft-netwatch: /proc/self/ns/net");
    return 2;
  }
  char line[256];
  size_t have = 0;
  int skipping = 0; /* inside a line too long for any command: dropped up to its end */
  long long next = now_ms() + TICK_MS;
  for (;;) {
    static struct pollfd p[1 + 2 * MAX_NS];
    int np = 0;
    p[np++] = (struct pollfd){ .fd = 0, .events = POLLIN };
    for (int i = 0; i < nwatched; i++) {
      if (watched[i]->rt >= 0) p[np++] = (struct pollfd){ .fd = watched[i]->rt, .events = POLLIN };
      if (watched[i]->fl >= 0) p[np++] = (struct pollfd){ .fd = watched[i]->fl, .events = POLLIN };
    }
    long long wait = next - now_ms();
    int r = poll(p, (nfds_t)np, wait < 0 ? 0 : (int)wait);
    if (r < 0 && errno != EINTR) return 2;
    if (r > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      ssize_t n = read(0, line + have, sizeof line - 1 - have);
      if (n <= 0) return 0;
      have += (size_t)n;
      line[have] = 0;
      char *nl;
      while ((nl = memchr(line, '\n', have)) != NULL) {
        *nl = 0;
        if (!skipping) command(line);
        skipping = 0;
        size_t used = (size_t)(nl - line) + 1;
        memmove(line, nl + 1, have - used);
        have -= used;
        line[have] = 0;
      }
      /* A line longer than any valid command is dropped whole. */
      if (have == sizeof line - 1) {
        have = 0;
        skipping = 1;
      }
      fflush(stdout);
    }
    /* Events are only marked here; the tick reports them, so a burst of our own writes is one line. */
    for (int i = 1; i < np; i++) if (p[i].revents & (POLLIN | POLLERR)) for (int j = 0; j < nwatched; j++) {
      if (watched[j]->rt == p[i].fd) drain(watched[j]);
      else if (watched[j]->fl == p[i].fd) flow_drain(watched[j]);
    }
    /* Flow records go out as they come (the kernel batches them for up to 100 ms already). */
    fflush(stdout);
    if (now_ms() >= next) {
      tick();
      fflush(stdout);
      next = now_ms() + TICK_MS;
    }
  }
}
