/*
 * weft-cni: the CNI plugin executable runtimes exec. It relays one invocation (the CNI_* environment
 * and stdin) to the weft agent's unix socket and prints the agent's answer; every decision is made in
 * the agent. Written in C because a Node process costs ~50 ms to start, more than a whole reference
 * plugin ADD. Protocol: see relay framing in src/plugins/cni/socket.ts.
 * Socket: $WEFT_AGENT_SOCK, else the conflist's "agentSocket", else /run/weft/agent.sock.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static void fail(int code, const char *msg, const char *details) {
  printf("{\"cniVersion\":\"1.1.0\",\"code\":%d,\"msg\":\"%s\",\"details\":\"%s\"}\n", code, msg, details);
  exit(1);
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w; n -= (size_t)w;
  }
  return 0;
}

/*
 * Finds the config's own "agentSocket":"PATH" (a key of the top-level object, not one inside args,
 * runtimeConfig or prevResult, which the runtime or a pod's annotations may fill); runtimes re-serialise
 * JSON, so allow spaces around ':'. 1 found, 0 absent, -1 longer than a socket path can be, -2 with a
 * JSON escape (or unterminated). Falling back to the default socket then would send the call to another
 * agent than the one the conflist names. Not JSON at all: absent (the agent says what is wrong with it).
 */
static int socket_from_config(const char *in, char *out, size_t cap) {
  static const char key[] = "agentSocket";
  int depth = 0;
  const char *p = in;
  while (*p) {
    if (*p == '{' || *p == '[') { depth++; p++; continue; }
    if (*p == '}' || *p == ']') { depth--; p++; continue; }
    if (*p != '"') { p++; continue; }
    const char *s = ++p;
    while (*p && *p != '"') p += (*p == '\\' && p[1]) ? 2 : 1;
    if (!*p) return 0;
    size_t len = (size_t)(p - s);
    p++;
    if (depth != 1 || len != sizeof key - 1 || memcmp(s, key, len) != 0) continue;
    const char *k = p;
    while (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r') k++;
    if (*k != ':') continue; /* a value that reads "agentSocket", not the key */
    k++;
    while (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r') k++;
    if (*k++ != '"') return 0;
    size_t n = 0;
    while (k[n] && k[n] != '"' && k[n] != '\\') n++;
    if (k[n] != '"') return -2;
    if (n >= cap) return -1;
    memcpy(out, k, n);
    out[n] = 0;
    return 1;
  }
  return 0;
}

/* The agent's exit status line: 1 to 3 digits, 0-255. Anything else is -1 (never "0", success). */
static int parse_status(const char *s, size_t n) {
  if (n == 0 || n > 3) return -1;
  int v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v > 255 ? -1 : v;
}

static void too_long(int code, const char *field, size_t cap) {
  char details[96];
  snprintf(details, sizeof details, "a unix socket path has at most %zu bytes", cap - 1);
  char msg[96];
  snprintf(msg, sizeof msg, "%s is too long for a unix socket path", field);
  fail(code, msg, details);
}

int main(void) {
  size_t cap = 1 << 16, len = 0;
  char *in = malloc(cap + 1);
  if (!in) fail(5, "out of memory", "");
  for (;;) {
    if (len == cap) { cap *= 2; in = realloc(in, cap + 1); if (!in) fail(5, "out of memory", ""); }
    ssize_t r = read(0, in + len, cap - len);
    if (r < 0) { if (errno == EINTR) continue; fail(5, "cannot read stdin", strerror(errno)); }
    if (r == 0) break;
    len += (size_t)r;
  }
  in[len] = 0;

  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  const char *env_sock = getenv("WEFT_AGENT_SOCK");
  if (env_sock && *env_sock) {
    if (strlen(env_sock) >= sizeof addr.sun_path) too_long(4, "WEFT_AGENT_SOCK", sizeof addr.sun_path);
    strcpy(addr.sun_path, env_sock);
  } else {
    int found = socket_from_config(in, addr.sun_path, sizeof addr.sun_path);
    if (found == -1) too_long(7, "agentSocket", sizeof addr.sun_path);
    if (found == -2) fail(7, "agentSocket must be a plain path (no JSON escapes)", "");
    if (found == 0) strcpy(addr.sun_path, "/run/weft/agent.sock");
  }

  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    const char *cmd = getenv("CNI_COMMAND");
    if (cmd && strcmp(cmd, "VERSION") == 0) {
      printf("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]}\n");
      return 0;
    }
    fail(11, "the weft agent is not running (cannot connect to its socket); try again later", strerror(errno));
  }
  for (char **e = environ; *e; e++) {
    if (strncmp(*e, "CNI_", 4) == 0 && write_all(fd, *e, strlen(*e) + 1) < 0) fail(5, "cannot talk to the weft agent", strerror(errno));
  }
  if (write_all(fd, "", 1) < 0 || write_all(fd, in, len) < 0) fail(5, "cannot talk to the weft agent", strerror(errno));
  shutdown(fd, SHUT_WR);

  size_t rcap = 1 << 16, rlen = 0;
  char *res = malloc(rcap + 1);
  if (!res) fail(5, "out of memory", "");
  for (;;) {
    if (rlen == rcap) { rcap *= 2; res = realloc(res, rcap + 1); if (!res) fail(5, "out of memory", ""); }
    ssize_t r = read(fd, res + rlen, rcap - rlen);
    if (r < 0) { if (errno == EINTR) continue; fail(5, "cannot read the weft agent's answer", strerror(errno)); }
    if (r == 0) break;
    rlen += (size_t)r;
  }
  res[rlen] = 0;
  char *nl = memchr(res, '\n', rlen);
  if (!nl) fail(999, "the weft agent closed the connection without an answer", "");
  int code = parse_status(res, (size_t)(nl - res));
  if (code < 0) fail(999, "the weft agent answered a garbled status line", "expected 0-255 and a newline");
  write_all(1, nl + 1, rlen - (size_t)(nl + 1 - res));
  return code;
}
