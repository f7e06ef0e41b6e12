/*
 * weft-nftgen NETNS_PATH...: prints, for each network namespace file given (e.g. /run/netns/NAME, or
 * /proc/self/ns/net for the caller's own), one line "INODE GENERATION": the namespace's inode and its
 * nftables ruleset generation (NFT_MSG_GETGEN), or "- -" when it cannot be read.
 *
 * Why: the generation goes up by one with every committed nft transaction in a namespace, whoever makes
 * it, so an unchanged generation proves that nobody touched any table there. The agent asks for it on
 * every resync instead of listing its tables: `nft list` fetches every set element first (~20 s for a
 * table of a million elements), and `nft monitor` makes the kernel build an event per element of every
 * write (a big table's replace took 3x as long with a monitor listening). One exec answers for all
 * namespaces. Written in C because Node cannot open a netlink socket; without a compiler the agent
 * falls back to listing its tables (see generation.ts).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

/* The generation of the namespace this thread is in, or -1. */
static long long generation(void) {
  int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  if (s < 0) return -1;
  struct { struct nlmsghdr nh; struct nfgenmsg g; } req;
  memset(&req, 0, sizeof req);
  req.nh.nlmsg_len = sizeof req;
  req.nh.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
  req.nh.nlmsg_flags = NLM_F_REQUEST;
  req.nh.nlmsg_seq = 1;
  req.g.nfgen_family = AF_UNSPEC;
  req.g.version = NFNETLINK_V0;
  struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
  long long gen = -1;
  if (sendto(s, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) == (ssize_t)sizeof req) {
    char buf[512] __attribute__((aligned(4)));
    ssize_t n = recv(s, buf, sizeof buf, 0);
    struct nlmsghdr *nh = (struct nlmsghdr *)buf;
    if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nfgenmsg)) && NLMSG_OK(nh, (size_t)n) && nh->nlmsg_type != NLMSG_ERROR) {
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
    }
  }
  close(s);
  return gen;
}

int main(int argc, char **argv) {
  /* Every path is opened before the first setns: /proc/self/ns/net names the namespace we are in now. */
  int fds[argc];
  for (int i = 1; i < argc; i++) fds[i] = open(argv[i], O_RDONLY | O_CLOEXEC);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    long long gen = -1;
    if (fds[i] >= 0 && fstat(fds[i], &st) == 0 && setns(fds[i], CLONE_NEWNET) == 0) gen = generation();
    if (gen < 0) printf("- -\n");
    else printf("%llu %lld\n", (unsigned long long)st.st_ino, gen);
    if (fds[i] >= 0) close(fds[i]);
  }
  return 0;
}
