/**
 * The run's record: a timeline of every event with its time since the start, faults injected and
 * invariant checks made by kind, and violations. Everything is printed as it happens, so a run that
 * dies still leaves its timeline on the terminal.
 */
export class Recorder {
  readonly t0 = Date.now();
  readonly timeline: string[] = [];
  readonly faults = new Map<string, number>();
  readonly checks = new Map<string, number>();
  readonly violations: string[] = [];

  constructor(readonly seed: number, private readonly out: (line: string) => void = (l) => process.stdout.write(`${l}\n`)) {}

  private stamp(): string {
    return `+${((Date.now() - this.t0) / 1000).toFixed(1).padStart(6)}s`;
  }

  event(text: string): void {
    const line = `${this.stamp()} ${text}`;
    this.timeline.push(line);
    this.out(line);
  }

  fault(kind: string, text: string): void {
    this.faults.set(kind, (this.faults.get(kind) ?? 0) + 1);
    this.event(`FAULT ${kind}: ${text}`);
  }

  /** Counts one check of `kind`; a failed one is a violation. */
  check(kind: string, ok: boolean, detail: () => string): boolean {
    this.checks.set(kind, (this.checks.get(kind) ?? 0) + 1);
    if (!ok) this.violation(kind, detail());
    return ok;
  }

  violation(kind: string, detail: string): void {
    const line = `VIOLATION ${kind}: ${detail}`;
    this.violations.push(line);
    this.event(line);
  }

  /** On a violation: the seed to replay, the whole timeline, then the violations again. */
  failureReport(): string {
    return [`chaos: ${this.violations.length} violation(s); replay with --seed ${this.seed}`, '--- timeline', ...this.timeline, '--- violations', ...this.violations].join('\n');
  }

  /** A markdown block for docs/benchmarks.md. */
  summary(meta: { minutes: number; hosts: number; machine: string }): string {
    const rows = (m: Map<string, number>) => [...m.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `| ${k} | ${n} |`);
    const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
    const ran = ((Date.now() - this.t0) / 60_000).toFixed(1);
    return [
      `### chaos — ${new Date().toISOString().slice(0, 10)}, seed ${this.seed}, ${meta.hosts} hosts, ${meta.minutes} min asked (${ran} min wall, setup and teardown included), ${meta.machine}`,
      '',
      `| fault injected | count |`, '| --- | --- |', ...rows(this.faults), `| **total** | ${total(this.faults)} |`,
      '',
      `| invariant check | count |`, '| --- | --- |', ...rows(this.checks), `| **total** | ${total(this.checks)} |`,
      '',
      `Violations: ${this.violations.length} (target 0)${this.violations.length ? `\n\n${this.violations.map((v) => `- ${v}`).join('\n')}` : ''}`,
    ].join('\n');
  }
}
