/*
 * Map elements that weft-nftd (nftd.c) writes as netlink messages of its own, in the same transaction as
 * the script libnftables commits beside them.
 *
 * Why: nft spends ~3.5 µs of its own per element it parses and evaluates (measured beside a 50,000-rule
 * table: a delta of 4,300 elements in 120 new maps took 39-48 ms to commit, the same delta with the maps
 * declared empty 14-24 ms), while the kernel takes ~1 µs per element. The agent declares each new map in
 * the script (header only) and sends its elements here, already encoded.
 *
 * How: libnftables sends a script's whole transaction with one sendmsg(): BATCH_BEGIN, its messages,
 * BATCH_END. This file defines sendmsg() and recvmsg(), which the dynamic linker binds libnftables' and
 * libmnl's calls to (the helper is linked with -rdynamic): a batch for nf_tables gets these messages just
 * before its BATCH_END, after everything the script does (so the maps it creates exist, and chains the
 * elements jump to too), and the kernel commits the lot or none of it. Replies to these messages are
 * read as they pass: nft fails such a commit but cannot say which of them the kernel refused. Where the
 * script sends no batch (it is empty), the helper sends one of its own.
 *
 * Request (after the script): lines of text, sent in their order.
 *   set|map FAMILY TABLE NAME    the set or map the next elements go into
 *   KEYHEX [DATA]                one element: its key as the kernel holds it (hex); DATA is =HEX for a
 *                                value (a mark), a verdict (accept, drop, continue, return, jump CHAIN,
 *                                goto CHAIN), or nothing in a set
 *   flush|delete chain|map|set FAMILY TABLE NAME
 *                                what a change no longer uses going (a flush of a chain deletes its
 *                                rules, of a map its elements): nft would first list every chain of the
 *                                table for a delete (~40 ms beside 14,000 chains).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>

/* The messages built from the last request, waiting for a batch. */
static char *msgs;
static size_t msgs_len, msgs_cap;
/* Their sequence numbers (far above libnftables', which count up from a few): first and one past last. */
#define FIRST_SEQ 0xf0000000u
static uint32_t next_seq = FIRST_SEQ;
/* The set of each message, by sequence number - FIRST_SEQ: for the error that names one. */
static char (*msg_sets)[NFT_SET_MAXNAMELEN];
static size_t msg_count, msg_sets_cap;
/* The first error the kernel gave one of them, and whether a batch carried them. */
static int refused;
static char refused_set[NFT_SET_MAXNAMELEN];
static int spliced;

/* Each message's element list stays below this: a netlink attribute's length is 16 bits. */
#define MAX_LIST 60000

static void need(size_t n) {
  if (msgs_len + n <= msgs_cap) return;
  msgs_cap = (msgs_len + n) * 2;
  msgs = realloc(msgs, msgs_cap);
  if (!msgs) {
    fputs("weft-nftd: out of memory\n", stderr);
    exit(4);
  }
}

static void attr(uint16_t type, const void *data, size_t n) {
  size_t total = NLA_ALIGN(NLA_HDRLEN + n);
  need(total);
  struct nlattr *a = (struct nlattr *)(msgs + msgs_len);
  a->nla_type = type;
  a->nla_len = NLA_HDRLEN + n;
  memcpy(msgs + msgs_len + NLA_HDRLEN, data, n);
  memset(msgs + msgs_len + NLA_HDRLEN + n, 0, total - NLA_HDRLEN - n);
  msgs_len += total;
}

static size_t nest(uint16_t type) {
  need(NLA_HDRLEN);
  size_t at = msgs_len;
  struct nlattr *a = (struct nlattr *)(msgs + at);
  a->nla_type = type | NLA_F_NESTED;
  msgs_len += NLA_HDRLEN;
  return at;
}

static void nest_end(size_t at) { ((struct nlattr *)(msgs + at))->nla_len = msgs_len - at; }

static void u32_be(uint16_t type, uint32_t v) {
  v = htonl(v);
  attr(type, &v, 4);
}

static size_t hdr(uint16_t type, uint16_t flags, uint8_t family, uint16_t res_id) {
  size_t n = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg));
  need(n);
  size_t at = msgs_len;
  memset(msgs + at, 0, n);
  struct nlmsghdr *h = (struct nlmsghdr *)(msgs + at);
  h->nlmsg_type = type;
  h->nlmsg_flags = NLM_F_REQUEST | flags;
  h->nlmsg_seq = next_seq++;
  struct nfgenmsg *g = (struct nfgenmsg *)(msgs + at + NLMSG_HDRLEN);
  g->nfgen_family = family;
  g->version = NFNETLINK_V0;
  g->res_id = htons(res_id);
  msgs_len += n;
  return at;
}

static void msg_end(size_t at) { ((struct nlmsghdr *)(msgs + at))->nlmsg_len = msgs_len - at; }

static int family_of(const char *s) {
  static const struct { const char *name; int nf; } all[] = {
    { "inet", NFPROTO_INET }, { "ip", NFPROTO_IPV4 }, { "ip6", NFPROTO_IPV6 }, { "arp", NFPROTO_ARP },
    { "bridge", NFPROTO_BRIDGE }, { "netdev", NFPROTO_NETDEV },
  };
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) if (!strcmp(s, all[i].name)) return all[i].nf;
  return -1;
}

static int unhex(const char *s, unsigned char *out, size_t max, size_t *n) {
  size_t len = strlen(s);
  if (len == 0 || len % 2 || len / 2 > max) return -1;
  for (size_t i = 0; i < len / 2; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1 || !strchr("0123456789abcdefABCDEF", s[2 * i]) || !strchr("0123456789abcdefABCDEF", s[2 * i + 1])) return -1;
    out[i] = (unsigned char)v;
  }
  *n = len / 2;
  return 0;
}

/* Whether `name` is a chain or set name as nft writes one unquoted. */
static int plain_name(const char *name) {
  if (!*name || strlen(name) >= NFT_CHAIN_MAXNAMELEN) return 0;
  for (const char *p = name; *p; p++) if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *p)) return 0;
  return 1;
}

/* The element in `words` (KEYHEX [DATA...]) into the open list; 0, or -1 with `why` set. */
static int element(char **words, int n, int is_map, const char **why) {
  unsigned char key[NFT_DATA_VALUE_MAXLEN];
  size_t klen;
  if (unhex(words[0], key, sizeof key, &klen)) return *why = "a key is hex of at most 64 bytes", -1;
  size_t e = nest(NFTA_LIST_ELEM);
  size_t k = nest(NFTA_SET_ELEM_KEY);
  attr(NFTA_DATA_VALUE, key, klen);
  nest_end(k);
  if (n == 1) {
    if (is_map) return *why = "an element of a map has a value", -1;
  } else {
    if (!is_map) return *why = "an element of a set has no value", -1;
    size_t d = nest(NFTA_SET_ELEM_DATA);
    const char *w = words[1];
    if (w[0] == '=') {
      unsigned char v[NFT_DATA_VALUE_MAXLEN];
      size_t vlen;
      if (n != 2 || unhex(w + 1, v, sizeof v, &vlen)) return *why = "a value is =HEX", -1;
      attr(NFTA_DATA_VALUE, v, vlen);
    } else {
      size_t vd = nest(NFTA_DATA_VERDICT);
      int to_chain = !strcmp(w, "jump") || !strcmp(w, "goto");
      if (to_chain && (n != 3 || !plain_name(words[2]))) return *why = "jump and goto name a chain", -1;
      if (!to_chain && n != 2) return *why = "a verdict is one word, or jump or goto and a chain", -1;
      if (!strcmp(w, "accept")) u32_be(NFTA_VERDICT_CODE, NF_ACCEPT);
      else if (!strcmp(w, "drop")) u32_be(NFTA_VERDICT_CODE, NF_DROP);
      else if (!strcmp(w, "continue")) u32_be(NFTA_VERDICT_CODE, (uint32_t)NFT_CONTINUE);
      else if (!strcmp(w, "return")) u32_be(NFTA_VERDICT_CODE, (uint32_t)NFT_RETURN);
      else if (to_chain) {
        u32_be(NFTA_VERDICT_CODE, (uint32_t)(w[0] == 'j' ? NFT_JUMP : NFT_GOTO));
        attr(NFTA_VERDICT_CHAIN, words[2], strlen(words[2]) + 1);
      } else return *why = "unknown verdict", -1;
      nest_end(vd);
    }
    nest_end(d);
  }
  nest_end(e);
  return 0;
}

static void remember_set(const char *name);

/*
 * A removal (VERB KIND FAMILY TABLE NAME: flush or delete a chain, map or set) as its own message; NULL,
 * or why not. A chain's flush is its rules' deletion; a map's, its elements'.
 */
static const char *removal(char **words, int n) {
  int family;
  if (n != 5 || (family = family_of(words[2])) < 0 || !plain_name(words[3]) || !plain_name(words[4]) || strlen(words[3]) >= NFT_TABLE_MAXNAMELEN || strlen(words[4]) >= NFT_SET_MAXNAMELEN)
    return "expected: flush|delete chain|map|set FAMILY TABLE NAME";
  int flush = words[0][0] == 'f';
  int chain = !strcmp(words[1], "chain");
  if (!chain && strcmp(words[1], "map") && strcmp(words[1], "set")) return "what goes is a chain, map or set";
  uint16_t type = chain ? (flush ? NFT_MSG_DELRULE : NFT_MSG_DELCHAIN) : (flush ? NFT_MSG_DELSETELEM : NFT_MSG_DELSET);
  /* In each of these messages the table is attribute 1 and the name attribute 2 or 3. */
  uint16_t name_attr = chain ? (flush ? NFTA_RULE_CHAIN : NFTA_CHAIN_NAME) : (flush ? NFTA_SET_ELEM_LIST_SET : NFTA_SET_NAME);
  size_t m = hdr((NFNL_SUBSYS_NFTABLES << 8) | type, 0, (uint8_t)family, 0);
  attr(NFTA_CHAIN_TABLE, words[3], strlen(words[3]) + 1);
  attr(name_attr, words[4], strlen(words[4]) + 1);
  msg_end(m);
  remember_set(words[4]);
  return NULL;
}

static void remember_set(const char *name) {
  if (msg_count == msg_sets_cap) {
    msg_sets_cap = msg_sets_cap ? msg_sets_cap * 2 : 64;
    msg_sets = realloc(msg_sets, msg_sets_cap * sizeof *msg_sets);
    if (!msg_sets) exit(4);
  }
  snprintf(msg_sets[msg_count++], NFT_SET_MAXNAMELEN, "%s", name);
}

/*
 * Builds the messages for one request's element lines. 0, or -1 with a line number and reason in `err`
 * (nothing is sent then).
 */
int elements_load(char *text, size_t len, char *err, size_t errlen) {
  msgs_len = 0;
  msg_count = 0;
  next_seq = FIRST_SEQ;
  refused = 0;
  spliced = 0;
  char table[NFT_TABLE_MAXNAMELEN] = "", set[NFT_SET_MAXNAMELEN] = "";
  int family = -1, is_map = 0;
  size_t m = 0, list = 0;
  int open = 0, line_no = 0;
  char *p = text, *end = text + len;
  while (p < end) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *line_end = nl ? nl : end;
    *line_end = '\0';
    line_no++;
    char *words[6];
    int n = 0;
    for (char *w = strtok(p, " "); w && n < 6; w = strtok(NULL, " ")) words[n++] = w;
    p = line_end + 1;
    if (n == 0) continue;
    const char *why = NULL;
    if (n == 6) why = "too many words";
    else if (!strcmp(words[0], "flush") || !strcmp(words[0], "delete")) {
      if (open) {
        nest_end(list);
        msg_end(m);
        open = 0;
      }
      why = removal(words, n);
    } else if (!strcmp(words[0], "set") || !strcmp(words[0], "map")) {
      if (n != 4 || (family = family_of(words[1])) < 0 || !plain_name(words[2]) || !plain_name(words[3]) || strlen(words[2]) >= sizeof table || strlen(words[3]) >= sizeof set)
        why = "expected: set|map FAMILY TABLE NAME";
      else {
        if (open) {
          nest_end(list);
          msg_end(m);
          open = 0;
        }
        strcpy(table, words[2]);
        strcpy(set, words[3]);
        is_map = words[0][0] == 'm';
      }
    } else if (!*set) why = "an element before any set line";
    else {
      if (open && msgs_len - list > MAX_LIST) {
        nest_end(list);
        msg_end(m);
        open = 0;
      }
      if (!open) {
        m = hdr((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM, NLM_F_CREATE, (uint8_t)family, 0);
        attr(NFTA_SET_ELEM_LIST_TABLE, table, strlen(table) + 1);
        attr(NFTA_SET_ELEM_LIST_SET, set, strlen(set) + 1);
        list = nest(NFTA_SET_ELEM_LIST_ELEMENTS);
        remember_set(set);
        open = 1;
      }
      if (n > 3 || element(words, n, is_map, &why)) why = why ? why : "too many words";
    }
    if (why) {
      snprintf(err, errlen, "element line %d: %s", line_no, why);
      msgs_len = 0;
      msg_count = 0;
      return -1;
    }
  }
  if (open) {
    nest_end(list);
    msg_end(m);
  }
  return 0;
}

static int is_nftables_batch(const struct msghdr *msg) {
  if (msg->msg_iovlen == 0 || msg->msg_iov[0].iov_len < NLMSG_HDRLEN + sizeof(struct nfgenmsg)) return 0;
  const struct nlmsghdr *h = msg->msg_iov[0].iov_base;
  const struct nfgenmsg *g = (const void *)((const char *)h + NLMSG_HDRLEN);
  return h->nlmsg_type == NFNL_MSG_BATCH_BEGIN && ntohs(g->res_id) == NFNL_SUBSYS_NFTABLES;
}

/* Where the last iovec's BATCH_END starts, or -1. */
static ssize_t batch_end_at(const struct iovec *last) {
  const struct nlmsghdr *h = last->iov_base;
  int left = (int)last->iov_len;
  ssize_t at = -1;
  for (; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) at = h->nlmsg_type == NFNL_MSG_BATCH_END ? (const char *)h - (const char *)last->iov_base : -1;
  return at;
}

static void grow_sndbuf(int fd, size_t total) {
  int cur = 0;
  socklen_t l = sizeof cur;
  if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &cur, &l) == 0 && (size_t)cur > total + 65536) return;
  int want = (int)(total + 65536);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof want);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  if (msgs_len == 0 || !is_nftables_batch(msg)) return syscall(SYS_sendmsg, fd, msg, flags);
  const struct iovec *last = &msg->msg_iov[msg->msg_iovlen - 1];
  ssize_t at = batch_end_at(last);
  if (at < 0) return syscall(SYS_sendmsg, fd, msg, flags);
  /* The same batch again (nft resends one whose acknowledgements overflowed) carries them again. */
  size_t n = msg->msg_iovlen;
  struct iovec iov[n + 2];
  memcpy(iov, msg->msg_iov, (n - 1) * sizeof *iov);
  iov[n - 1] = (struct iovec){ last->iov_base, (size_t)at };
  iov[n] = (struct iovec){ msgs, msgs_len };
  iov[n + 1] = (struct iovec){ (char *)last->iov_base + at, last->iov_len - (size_t)at };
  struct msghdr with = *msg;
  with.msg_iov = iov;
  with.msg_iovlen = n + 2;
  size_t total = 0;
  for (size_t i = 0; i < n + 2; i++) total += iov[i].iov_len;
  grow_sndbuf(fd, total);
  spliced = 1;
  return syscall(SYS_sendmsg, fd, &with, flags);
}

/* Notes the first error the kernel gave one of our messages, in a reply buffer of `n` bytes. */
static void scan_replies(const void *buf, ssize_t n) {
  int left = (int)n;
  for (const struct nlmsghdr *h = buf; NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
    if (h->nlmsg_type != NLMSG_ERROR || h->nlmsg_seq < FIRST_SEQ || h->nlmsg_seq >= next_seq) continue;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))) continue;
    const struct nlmsgerr *e = NLMSG_DATA(h);
    if (e->error == 0 || refused) continue;
    refused = -e->error;
    size_t i = h->nlmsg_seq - FIRST_SEQ;
    snprintf(refused_set, sizeof refused_set, "%s", i < msg_count ? msg_sets[i] : "?");
  }
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags) {
  ssize_t n = syscall(SYS_recvmsg, fd, msg, flags);
  if (n > 0 && msgs_len > 0 && msg->msg_iovlen > 0) scan_replies(msg->msg_iov[0].iov_base, n < (ssize_t)msg->msg_iov[0].iov_len ? n : (ssize_t)msg->msg_iov[0].iov_len);
  return n;
}

/* Sends the elements in a batch of their own (the script sent none); 0, or -1 (`refused` says why). */
static int send_alone(void) {
  static int fd = -1;
  static char buf[65536];
  if (fd < 0) {
    fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) return refused = errno, snprintf(refused_set, sizeof refused_set, "(socket)"), -1;
    /* An error's reply without the request it answers (up to ~60 KB each): many still fit the buffer. */
    int one = 1;
    setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  }
  /* Nothing left from an earlier batch may be read as this one's (sequence numbers start again). */
  for (int i = 0; i < 4096; i++) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0 || (n < 0 && (errno == ENOBUFS || errno == EINTR))) continue;
    break;
  }
  char begin[NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nfgenmsg))], end_msg[sizeof begin];
  struct iovec iov[3] = { { begin, sizeof begin }, { msgs, msgs_len }, { end_msg, sizeof end_msg } };
  for (int i = 0; i < 2; i++) {
    char *b = i ? end_msg : begin;
    memset(b, 0, sizeof begin);
    struct nlmsghdr *h = (struct nlmsghdr *)b;
    h->nlmsg_len = sizeof begin;
    h->nlmsg_type = i ? NFNL_MSG_BATCH_END : NFNL_MSG_BATCH_BEGIN;
    h->nlmsg_flags = NLM_F_REQUEST;
    ((struct nfgenmsg *)(b + NLMSG_HDRLEN))->res_id = htons(NFNL_SUBSYS_NFTABLES);
  }
  struct sockaddr_nl to = { .nl_family = AF_NETLINK };
  struct msghdr msg = { .msg_name = &to, .msg_namelen = sizeof to, .msg_iov = iov, .msg_iovlen = 3 };
  grow_sndbuf(fd, msgs_len + 2 * sizeof begin);
  if (syscall(SYS_sendmsg, fd, &msg, 0) < 0) return refused = errno, snprintf(refused_set, sizeof refused_set, "(send)"), -1;
  /*
   * The kernel handles a batch within sendmsg: its replies are queued now, and only errors reply (no
   * message asks for an ack). A failed read other than "nothing more" lost some of them: failed too.
   */
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      scan_replies(buf, n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && !refused) {
      refused = errno;
      snprintf(refused_set, sizeof refused_set, "(the kernel's replies)");
    }
    break;
  }
  return refused ? -1 : 0;
}

/*
 * After the script ran (`nft_rc` its result): sends the elements alone if no batch carried them, and
 * says whether the kernel took them: 0, or -1 with the reason in `why`.
 */
int elements_finish(int nft_rc, char *why, size_t whylen) {
  int rc = 0;
  if (msgs_len > 0 && !spliced && nft_rc == 0) rc = send_alone();
  if (refused) {
    snprintf(why, whylen, "the kernel refused what was sent for %s: %s", refused_set, strerror(refused));
    rc = -1;
  }
  msgs_len = 0;
  msg_count = 0;
  spliced = 0;
  refused = 0;
  return rc;
}
