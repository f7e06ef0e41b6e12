/*
 * weft-httpload: an HTTPS load generator for bench:api, as little client as possible. On a two-core
 * machine the bench's client shares the cores with the server it measures: the Node lean client takes
 * ~45 µs of CPU a request and its own event loop lags (its p99 of 9 ms was in every latency it reported);
 * this one takes a fraction of that, and stamps each answer as epoll hands it over.
 *
 *   weft-httpload HOST PORT CA CERT KEY PATH CONNS COUNT RATE BODY
 *
 * CONNS kept-alive TLS connections (TLS 1.2+, the server verified against CA for the IP HOST, this
 * client's certificate and key from CERT and KEY, or "-" for none), opened before the clock starts.
 * COUNT POSTs of BODY to PATH, one at a time per connection, each BODY's "%d" replaced by the request's
 * number. RATE 0: a closed loop (each connection sends its next request as its answer comes); RATE > 0:
 * an open loop, request i due at i / RATE s, sent on a free connection or, with none free, as soon as
 * one is (a latency counts from when the request was due, so waiting for a connection counts).
 *
 * Prints, once done: a line "done SECONDS CPU_US WAITED FAILED" (wall time, this process's CPU in µs,
 * requests that found no free connection, failures), then a line per request in the order answered:
 * "LATENCY_US STATUS IP" (IP: the answer's first "ip" field, or "-"). Exit 0, or 1 with a message.
 * Answers must carry content-length (chunked ones fail the run); connection errors fail their request.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

struct conn {
  int fd;
  SSL *ssl;
  int busy;
  long req;        /* the request in flight */
  double since;    /* when its latency counts from (µs) */
  size_t have;
  char buf[BUF];
};

struct result { double latency; int status; char ip[48]; };

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void die(const char *what) {
  fprintf(stderr, "weft-httpload: %s", what);
  unsigned long e = ERR_get_error();
  if (e) fprintf(stderr, ": %s", ERR_error_string(e, NULL));
  if (errno) fprintf(stderr, " (%s)", strerror(errno));
  fputc('\n', stderr);
  exit(1);
}

static SSL_CTX *ctx;
static const char *host, *path, *body;
static int port;

static void open_conn(struct conn *c) {
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) die("HOST must be an IPv4 address");
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) die("connect");
  c->ssl = SSL_new(ctx);
  if (!c->ssl) die("SSL_new");
  X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host);
  SSL_set_fd(c->ssl, c->fd);
  if (SSL_connect(c->ssl) != 1) die("TLS handshake");
  /* Non-blocking from here: the loop reads whatever epoll says has come. */
  int fl = fcntl(c->fd, F_GETFL);
  if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) != 0) die("non-blocking");
  c->busy = 0;
  c->have = 0;
}

static char *request_text(long i, int *len) {
  static char bodybuf[4096], out[8192];
  int n = snprintf(bodybuf, sizeof bodybuf, body, i);
  if (n < 0 || n >= (int)sizeof bodybuf) die("BODY is too long");
  *len = snprintf(out, sizeof out, "POST %s HTTP/1.1\r\nhost: %s:%d\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s", path, host, port, n, bodybuf);
  if (*len >= (int)sizeof out) die("request too long");
  return out;
}

/* Writes the whole request; a non-blocking write that cannot go at once (rare: a few hundred bytes) waits for the socket. */
static int send_request(struct conn *c, long i, double since) {
  int len;
  char *text = request_text(i, &len);
  c->busy = 1;
  c->req = i;
  c->since = since;
  c->have = 0;
  for (;;) {
    int w = SSL_write(c->ssl, text, len);
    if (w == len) return 0;
    int e = SSL_get_error(c->ssl, w);
    if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) return -1;
    struct pollfd p = { .fd = c->fd, .events = e == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN };
    poll(&p, 1, 1000);
  }
}

/* An answer complete in c->buf: its status and total length, or 0 while incomplete, -1 if unreadable. */
static long answer_length(struct conn *c, int *status) {
  c->buf[c->have < BUF ? c->have : BUF - 1] = 0;
  char *end = strstr(c->buf, "\r\n\r\n");
  if (!end) return 0;
  if (strncmp(c->buf, "HTTP/1.1 ", 9) != 0) return -1;
  *status = atoi(c->buf + 9);
  long length = -1;
  for (char *line = strstr(c->buf, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
    if (strncasecmp(line + 2, "content-length:", 15) == 0) length = atol(line + 17);
    if (strncasecmp(line + 2, "transfer-encoding:", 18) == 0) return -1;
  }
  if (length < 0) return -1;
  long total = (end - c->buf) + 4 + length;
  if (total >= BUF) return -1;
  return (long)c->have >= total ? total : 0;
}

static void ip_of(const char *text, char *ip) {
  const char *p = strstr(text, "\"ip\":\"");
  size_t n = 0;
  if (p) {
    p += 6;
    while (p[n] && p[n] != '"' && n < 47) n++;
  }
  if (n == 0) strcpy(ip, "-");
  else { memcpy(ip, p, n); ip[n] = 0; }
}

int main(int argc, char **argv) {
  if (argc != 11) {
    fprintf(stderr, "usage: weft-httpload HOST PORT CA CERT KEY PATH CONNS COUNT RATE BODY\n");
    return 1;
  }
  host = argv[1];
  port = atoi(argv[2]);
  path = argv[6];
  int nconns = atoi(argv[7]);
  long count = atol(argv[8]);
  double rate = atof(argv[9]);
  body = argv[10];
  if (port <= 0 || nconns <= 0 || count <= 0 || rate < 0) die("PORT, CONNS and COUNT must be positive, RATE 0 or more");
  signal(SIGPIPE, SIG_IGN);

  ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) die("SSL_CTX_new");
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (SSL_CTX_load_verify_locations(ctx, argv[3], NULL) != 1) die("CA");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  if (strcmp(argv[4], "-") != 0) {
    if (SSL_CTX_use_certificate_chain_file(ctx, argv[4]) != 1) die("CERT");
    if (SSL_CTX_use_PrivateKey_file(ctx, argv[5], SSL_FILETYPE_PEM) != 1) die("KEY");
  }

  struct conn *conns = calloc((size_t)nconns, sizeof *conns);
  struct result *results = calloc((size_t)count, sizeof *results);
  int *free_list = calloc((size_t)nconns, sizeof *free_list);
  if (!conns || !results || !free_list) die("memory");
  int ep = epoll_create1(0);
  int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
  if (ep < 0 || tfd < 0) die("epoll/timerfd");
  for (int k = 0; k < nconns; k++) {
    open_conn(&conns[k]);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = (uint32_t)k };
    if (epoll_ctl(ep, EPOLL_CTL_ADD, conns[k].fd, &ev) != 0) die("epoll_ctl");
    free_list[k] = k;
  }
  int nfree = nconns;
  struct epoll_event tev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };
  if (epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev) != 0) die("epoll_ctl timer");

  long next = 0, done = 0, answered = 0, waited = 0, failed = 0;
  struct rusage r0;
  getrusage(RUSAGE_SELF, &r0);
  double t0 = now_us();
  double interval = rate > 0 ? 1e6 / rate : 0;
  /* The last moment a request was due and no connection was free: any due by then waited for one. */
  double blocked = -1;

  /* Closed loop: every connection starts at once. */
  if (rate == 0) {
    while (nfree > 0 && next < count) {
      int k = free_list[--nfree];
      if (send_request(&conns[k], next, now_us()) != 0) die("a write failed");
      next++;
    }
  }

  struct epoll_event evs[256];
  while (done < count) {
    if (rate > 0) {
      /* Every request due by now goes out on a free connection; with none free, the rest wait. */
      double t = now_us();
      while (next < count && t0 + next * interval <= t) {
        if (nfree == 0) { blocked = t; break; }
        int k = free_list[--nfree];
        double due = t0 + next * interval;
        if (due <= blocked) waited++;
        if (send_request(&conns[k], next, due) != 0) die("a write failed");
        next++;
      }
      if (next < count) {
        long long ns = (long long)((t0 + next * interval) * 1e3);
        struct itimerspec its = { .it_value = { .tv_sec = ns / 1000000000LL, .tv_nsec = ns % 1000000000LL } };
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
      }
    }
    int n = epoll_wait(ep, evs, 256, 10000);
    if (n < 0) { if (errno == EINTR) continue; die("epoll_wait"); }
    if (n == 0) die("no answer for 10 s");
    double t = now_us();
    for (int j = 0; j < n; j++) {
      if (evs[j].data.u32 == UINT32_MAX) {
        uint64_t x;
        if (read(tfd, &x, sizeof x) < 0 && errno != EAGAIN) die("timerfd");
        continue;
      }
      struct conn *c = &conns[evs[j].data.u32];
      for (;;) {
        if (c->have >= BUF - 1) die("an answer larger than 64 KiB");
        int got = SSL_read(c->ssl, c->buf + c->have, (int)(BUF - 1 - c->have));
        if (got > 0) { c->have += (size_t)got; continue; }
        int e = SSL_get_error(c->ssl, got);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) break;
        die("the server closed a connection");
      }
      if (!c->busy) continue;
      int status = 0;
      long total = answer_length(c, &status);
      if (total == 0) continue;
      if (total < 0) die("an answer without content-length, chunked, or not HTTP/1.1");
      struct result *res = &results[answered++];
      res->latency = t - c->since;
      res->status = status;
      c->buf[total] = 0;
      ip_of(c->buf, res->ip);
      if (status >= 300) failed++;
      done++;
      c->busy = 0;
      c->have = 0;
      if (rate == 0) {
        if (next < count) {
          if (send_request(c, next, now_us()) != 0) die("a write failed");
          next++;
        }
      } else {
        free_list[nfree++] = (int)evs[j].data.u32;
      }
    }
  }
  double wall = (now_us() - t0) / 1e6;
  struct rusage r1;
  getrusage(RUSAGE_SELF, &r1);
  double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) * 1e6
    + (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec - r0.ru_stime.tv_usec);
  printf("done %.6f %.0f %ld %ld\n", wall, cpu, waited, failed);
  for (long i = 0; i < answered; i++) printf("%.0f %d %s\n", results[i].latency, results[i].status, results[i].ip);
  for (int k = 0; k < nconns; k++) { SSL_shutdown(conns[k].ssl); SSL_free(conns[k].ssl); close(conns[k].fd); }
  SSL_CTX_free(ctx);
  return 0;
}

