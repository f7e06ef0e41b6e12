// Builds the C relay for the CNI plugin (dist/weft-cni). Without a C compiler the agent installs the
// Node relay instead (slower per call), so a missing compiler is a warning, not a failure.
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';

mkdirSync('dist', { recursive: true });
const cc = process.env.CC || 'cc';
const r = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', 'dist/weft-cni', 'src/plugins/cni/shim.c'], { stdio: 'inherit' });
if (r.error || r.status !== 0) console.warn(`warning: could not build the C relay with ${cc}; the agent will use the Node relay`);

// The agent's drift watcher and ruleset-generation reader (src/datapath/linux/netwatch.c). Without it every
// resync re-reads every tenant's links and forwarding entries, and lists its nft tables to notice drift,
// which costs in proportion to the rules.
const w = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', 'dist/weft-netwatch', 'src/datapath/linux/netwatch.c'], { stdio: 'inherit' });
if (w.error || w.status !== 0) console.warn(`warning: could not build weft-netwatch with ${cc}; the agent will re-read every tenant and list its nft tables on every resync`);

// The agent's nft commit helper (src/datapath/linux/nftd.c), linked against libnftables.so.1 (installed
// with nftables; its header is not needed). Without it every commit is an `nft -f`: ~15 ms more each.
const n = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-rdynamic', '-o', 'dist/weft-nftd', 'src/datapath/linux/nftd.c', 'src/datapath/linux/nftd-elements.c', '-l:libnftables.so.1'], { stdio: 'inherit' });
if (n.error || n.status !== 0) console.warn(`warning: could not build weft-nftd with ${cc}; the agent will commit each nft change with nft -f`);

// Benchmarks' TCP connect loop and accept server (src/bench/connloop.c): bench:flows measures with it.
mkdirSync('dist/bench', { recursive: true });
const b = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', 'dist/bench/weft-connloop', 'src/bench/connloop.c'], { stdio: 'inherit' });
if (b.error || b.status !== 0) console.warn(`warning: could not build weft-connloop with ${cc}; bench:flows needs it`);

// Benchmarks' HTTPS load generator (src/bench/httpload.c, OpenSSL): bench:api's allocation rows from a
// client that takes a fraction of the Node client's CPU on the two cores it shares with the server.
const h = spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-o', 'dist/bench/weft-httpload', 'src/bench/httpload.c', '-lssl', '-lcrypto'], { stdio: 'inherit' });
if (h.error || h.status !== 0) console.warn(`warning: could not build weft-httpload with ${cc} (it needs libssl-dev); bench:api leaves out its rows`);
