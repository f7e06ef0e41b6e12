import type { Command } from 'commander';
import { act, intArg, leaf, type Io } from '../kit.js';

export function historyCommands(program: Command, io: Io): void {
  leaf(program, { name: 'history', summary: 'every change with its revision, time and actor', example: ['weft history', 'weft history --since 120 -o json'], tenant: false })
    .option('--since <revision>', 'changes after this revision', intArg('--since', 0, Number.MAX_SAFE_INTEGER))
    .option('--limit <n>', 'at most this many', intArg('--limit', 1, 99999), 1000)
    .action(act(io, async (ctx) => {
      const q = new URLSearchParams({ limit: String(ctx.opts['limit']) });
      if (ctx.opts['since'] !== undefined) q.set('since', String(ctx.opts['since']));
      const { items, next } = await ctx.client.request('GET', `/api/v1/history?${q}`);
      // More than one page: say where the next begins (on stderr, so -o json stays one document).
      if (typeof next === 'number') io.err(`more changes after revision ${next}: weft history --since ${next}\n`);
      ctx.table(items, [
        { header: 'REVISION', get: (c: any) => c.revision }, { header: 'TIME', get: (c: any) => c.time }, { header: 'ACTOR', get: (c: any) => c.actor },
        { header: 'OP', get: (c: any) => c.op }, { header: 'KIND', get: (c: any) => c.kind }, { header: 'KEY', get: (c: any) => c.key.split('/').slice(1).join('/') },
      ]);
    }));
  leaf(program, { name: 'watch', summary: 'stream changes as they happen (NDJSON), from a revision', example: 'weft watch --since 0', tenant: false, output: false })
    .option('--since <revision>', 'replay changes after this revision first', intArg('--since', 0, Number.MAX_SAFE_INTEGER))
    .action(act(io, async (ctx) => {
      const since = ctx.opts['since'];
      const body = await ctx.client.stream(`/api/v1/watch${since !== undefined ? `?since=${since}` : ''}`);
      const decoder = new TextDecoder();
      for await (const chunk of body) io.out(decoder.decode(chunk, { stream: true }));
    }));
}
