/*
 * weft-nftd: commits nft scripts in the network namespace it was started in, through libnftables, one
 * transaction per script, in one process that stays for many of them.
 *
 * Why: `nft -f` ends after each commit, and closing its netlink socket makes the kernel finish freeing
 * that transaction's old rules first (an RCU grace period): 13.7 ms of an 18 ms one-rule commit on these
 * machines, plus the exec of nsenter and nft. A socket held open pays neither (docs/decisions.md).
 *
 * Standard input: "LENGTH\n" then LENGTH bytes of script, or "LENGTH ELEMENTS\n" then LENGTH bytes of
 * script and ELEMENTS bytes of map elements to write in the same transaction (nftd-elements.c), repeated.
 * Standard output, per request: what nft said about it (its errors), each line prefixed "| ", then "ok"
 * or "err". It exits when its standard input closes (the agent let it go, or ended).
 *
 * libnftables' public API (nftables/libnftables.h, stable under soname 1) is declared here rather than
 * included: Debian ships the library with nftables itself, the header only in libnftables-dev.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <signal.h>
#include <unistd.h>

struct nft_ctx;
struct nft_ctx *nft_ctx_new(uint32_t flags);
void nft_ctx_free(struct nft_ctx *ctx);
int nft_ctx_buffer_output(struct nft_ctx *ctx);
const char *nft_ctx_get_output_buffer(struct nft_ctx *ctx);
int nft_ctx_buffer_error(struct nft_ctx *ctx);
const char *nft_ctx_get_error_buffer(struct nft_ctx *ctx);
int nft_run_cmd_from_filename(struct nft_ctx *nft, const char *filename);

/* nftd-elements.c */
int elements_load(char *text, size_t len, char *err, size_t errlen);
int elements_finish(int nft_rc, char *why, size_t whylen);

/* Scripts beyond this are refused (the agent's largest, a 50,000-rule table, is ~20 MB). */
#define MAX_SCRIPT (512UL * 1024 * 1024)

/* Reads exactly `len` bytes of standard input to `fd`; 0 if it ended first. */
static int copy_in(int fd, unsigned long len) {
  char chunk[65536];
  while (len > 0) {
    size_t want = len < sizeof chunk ? len : sizeof chunk;
    size_t got = fread(chunk, 1, want, stdin);
    if (got == 0) return 0;
    if (write(fd, chunk, got) != (ssize_t)got) {
      perror("weft-nftd: write");
      exit(3);
    }
    len -= got;
  }
  return 1;
}

static void report(const char *said, int failed) {
  const char *p = said ? said : "";
  while (*p) {
    const char *nl = strchr(p, '\n');
    size_t n = nl ? (size_t)(nl - p) : strlen(p);
    if (n > 0) printf("| %.*s\n", (int)n, p);
    p += n + (nl ? 1 : 0);
  }
  puts(failed ? "err" : "ok");
  fflush(stdout);
}

int main(void) {
  /* Ends with the agent even if the agent is killed (its pipe would close anyway; this is sooner). */
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  struct nft_ctx *ctx = nft_ctx_new(0);
  if (!ctx) {
    fputs("weft-nftd: nft_ctx_new failed\n", stderr);
    return 1;
  }
  nft_ctx_buffer_output(ctx);
  nft_ctx_buffer_error(ctx);
  char header[64];
  while (fgets(header, sizeof header, stdin)) {
    char *end;
    unsigned long len = strtoul(header, &end, 10), elen = 0;
    if (end != header && *end == ' ') elen = strtoul(end + 1, &end, 10);
    if (end == header || *end != '\n' || len > MAX_SCRIPT || elen > MAX_SCRIPT) {
      fputs("weft-nftd: bad request header\n", stderr);
      return 2;
    }
    /* Read as a file, as `nft -f` reads one: from a buffer, nft 1.0.6 quotes the wrong line of an error. */
    int fd = memfd_create("weft-nft-script", MFD_CLOEXEC);
    if (fd < 0) {
      perror("weft-nftd: memfd_create");
      return 3;
    }
    if (!copy_in(fd, len)) return 0; /* the agent went away mid-request: nothing was committed */
    char *elements = malloc(elen + 1);
    if (!elements) return 4;
    if (elen > 0 && fread(elements, 1, elen, stdin) != elen) return 0;
    char why[256];
    if (elements_load(elements, elen, why, sizeof why) != 0) {
      free(elements);
      close(fd);
      report(why, 1);
      continue;
    }
    free(elements);
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int rc = len > 0 ? nft_run_cmd_from_filename(ctx, path) : 0;
    close(fd);
    (void)nft_ctx_get_output_buffer(ctx); /* read to rewind it: a script that lists would otherwise pile up */
    const char *said = nft_ctx_get_error_buffer(ctx);
    if (elements_finish(rc, why, sizeof why) != 0) {
      printf("| %s\n", why);
      rc = rc ? rc : 1;
    }
    report(said, rc != 0);
  }
  nft_ctx_free(ctx);
  return 0;
}
