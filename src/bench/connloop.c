/*
 * weft-connloop: TCP connects for benchmarks (bench:flows), as little client as possible, so that what a
 * connection costs in the kernel (netfilter, conntrack, flow records) is most of what is measured.
 *
 *   weft-connloop serve PORT                  accepts and closes connections until killed (one process
 *                                             a core, SO_REUSEPORT, so a starved accept queue is rare)
 *   weft-connloop connect IP PORT SECONDS     sequential connects for SECONDS, each closed with a reset
 *                                             (no TIME_WAIT, so ports are reused); prints one line:
 *                                             "COUNT FAILED P50_US P99_US" (a failure: refused or 1 s)
 *   weft-connloop serve-udp PORT              answers each datagram with itself, until killed
 *   weft-connloop udp IP PORT SECONDS         sequential UDP exchanges, each from a new socket (a new
 *                                             flow): one byte out, its answer back; prints as connect
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>
#include <sys/prctl.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int serve(int port, int type) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  pid_t first = getpid();
  for (long i = 1; i < cores; i++)
    if (fork() == 0) {
      /* Gone with the first process, which is the one the benchmark kills. */
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != first) return 0;
      break;
    }
  int s = socket(AF_INET, type, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || (type == SOCK_STREAM && listen(s, 4096) != 0)) {
    perror("weft-connloop: listen");
    return 1;
  }
  while (type == SOCK_DGRAM) {
    char b[64];
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(s, b, sizeof b, 0, (struct sockaddr *)&from, &len);
    if (n > 0) sendto(s, b, (size_t)n, 0, (struct sockaddr *)&from, len);
  }
  for (;;) {
    int c = accept(s, NULL, NULL);
    if (c >= 0) close(c);
  }
}

/* One connect, or -1: non-blocking with a 1 s wait, so a lost SYN is a failure rather than a 1 s sample. */
static double connect_once(const struct sockaddr_in *to) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  struct linger l = { 1, 0 };
  setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  double t0 = now_us();
  int r = connect(s, (const struct sockaddr *)to, sizeof *to);
  if (r != 0 && errno == EINPROGRESS) {
    struct pollfd p = { .fd = s, .events = POLLOUT };
    int err = 0;
    socklen_t len = sizeof err;
    r = poll(&p, 1, 1000) == 1 && getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0 ? 0 : -1;
  }
  double took = now_us() - t0;
  close(s);
  return r == 0 ? took : -1;
}

/* One exchange from a new UDP socket (a new flow), or -1: no answer within 1 s. */
static double exchange_once(const struct sockaddr_in *to) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  if (s < 0) return -1;
  double t0 = now_us();
  char b = 'x';
  int r = -1;
  if (sendto(s, &b, 1, 0, (const struct sockaddr *)to, sizeof *to) == 1) {
    struct pollfd p = { .fd = s, .events = POLLIN };
    r = poll(&p, 1, 1000) == 1 && recv(s, &b, 1, 0) == 1 ? 0 : -1;
  }
  double took = now_us() - t0;
  close(s);
  return r == 0 ? took : -1;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "serve") == 0) return serve(atoi(argv[2]), SOCK_STREAM);
  if (argc == 3 && strcmp(argv[1], "serve-udp") == 0) return serve(atoi(argv[2]), SOCK_DGRAM);
  int udp = argc == 5 && strcmp(argv[1], "udp") == 0;
  if (argc != 5 || (!udp && strcmp(argv[1], "connect") != 0)) {
    fprintf(stderr, "usage: weft-connloop serve PORT | serve-udp PORT | connect IP PORT SECONDS | udp IP PORT SECONDS\n");
    return 2;
  }
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3])) };
  if (inet_pton(AF_INET, argv[2], &to.sin_addr) != 1) {
    fprintf(stderr, "weft-connloop: not an IPv4 address: %s\n", argv[2]);
    return 2;
  }
  double until = now_us() + atof(argv[4]) * 1e6;
  size_t cap = 1 << 16, n = 0, failed = 0;
  double *took = malloc(cap * sizeof *took);
  if (!took) return 1;
  while (now_us() < until) {
    double t = udp ? exchange_once(&to) : connect_once(&to);
    if (t < 0) {
      failed++;
      continue;
    }
    if (n == cap) {
      double *more = realloc(took, (cap *= 2) * sizeof *took);
      if (!more) return 1;
      took = more;
    }
    took[n++] = t;
  }
  qsort(took, n, sizeof *took, by_value);
  printf("%zu %zu %.1f %.1f\n", n, failed, n ? took[n / 2] : 0.0, n ? took[n * 99 / 100] : 0.0);
  return 0;
}
