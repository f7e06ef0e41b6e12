// Loaded into the real agent by bench:scale's memory part (NODE_OPTIONS=--import this file, in the agent's
// environment only): on SIGUSR2 it runs a full garbage collection and writes the process's memory to
// $WEFT_BENCH_HEAP_FILE, so RSS and V8 heap are read after a settle without changing the agent's code.
// Inert in any process other than `weft agent`, and without the variable.
import { writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const file = process.env['WEFT_BENCH_HEAP_FILE'];
if (file && process.argv[2] === 'agent') {
  // --expose-gc is not allowed in NODE_OPTIONS; set at run time, `gc` appears in contexts made afterwards.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  process.on('SIGUSR2', () => {
    gc();
    const m = process.memoryUsage();
    writeFileSync(file, JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, at: Date.now() }));
  });
}
