import type { Runner } from '../exec/index.js';

/** The running systemd, spoken to with `systemctl` through the runner. Only for an install into `/`. */

/** Makes systemd read the new units, then enables and starts them (one transaction: the agent after the server). */
export async function enableUnits(runner: Runner, units: readonly string[]): Promise<void> {
  await runner.run(['systemctl', 'daemon-reload']);
  await runner.run(['systemctl', 'enable', '--now', ...units], { timeoutMs: 120_000 });
}

/**
 * Stops and disables units. A unit already gone, or systemctl itself failing, is not what should stop an
 * uninstall (or the undoing of a failed install): problems are returned to be shown, never thrown.
 */
export function disableUnits(runner: Runner, units: readonly string[]): Promise<string[]> {
  return tryRun(runner, ['systemctl', 'disable', '--now', ...[...units].reverse()]);
}

export function reloadUnits(runner: Runner): Promise<string[]> {
  return tryRun(runner, ['systemctl', 'daemon-reload']);
}

async function tryRun(runner: Runner, argv: string[]): Promise<string[]> {
  try {
    const r = await runner.run(argv, { allowFailure: true, timeoutMs: 120_000 });
    return r.code === 0 ? [] : [`${argv.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`];
  } catch (e) {
    return [`${argv.join(' ')}: ${(e as Error).message}`];
  }
}
