import type { Recorder } from './recorder.js';
import { ALLOWED_PORT, DENIED_PORT, FLIP_PORT, type Container, type Workload } from './workload.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** An allowed flow may fail for a moment (a retransmit, a busy core); failing this long is an outage. */
const OUTAGE_MS = 10_000;

/**
 * The request loops: a -> b on the allowed port must keep answering; flows that no version of the policy
 * allows must never answer (policy never fails open); the flip rule's flow follows the rule within 10 s.
 */
/** A listener the probes reach: a CNI container or a Docker one (echoing on ALLOWED_PORT). */
export interface Target { name: string; ip: string }

export class Probes {
  /** Per allowed target: when it last answered, and whether its outage was already reported. */
  private readonly allowed = new Map<string, { last: number; out: boolean }>();
  private flipOn = false;
  /** Bumped by every flip: a probe that saw a flip happen meanwhile proves nothing either way. */
  private generation = 0;
  private settled = true;
  private turn = 0;

  /** `d0`: a Docker container of group b, listening on ALLOWED_PORT (proven by its runtime before). */
  constructor(private readonly work: Workload, private readonly rec: Recorder, private readonly c: { sa: Container; sb: Container; pa: Container; pc: Container; d0?: Target }) {}

  /** Flows that every version of the policy denies, to listeners proven up (provenListening). */
  private denied(): Array<[Container, Target, string]> {
    const { sb, pa, pc, d0 } = this.c;
    return [[pc, sb, ALLOWED_PORT], [pa, sb, DENIED_PORT], [pc, pa, ALLOWED_PORT], [sb, pa, ALLOWED_PORT], ...(d0 ? [[pc, d0, ALLOWED_PORT] as [Container, Target, string]] : []),
      ...(this.flipOn || !this.settled ? [] : [[pc, sb, FLIP_PORT] as [Container, Target, string]])];
  }

  /** Each listener answers from inside its own namespace (past the policy), so a refusal elsewhere means denied. */
  async provenListening(): Promise<void> {
    const { sb, pa } = this.c;
    for (const [c, port] of [[sb, ALLOWED_PORT], [sb, DENIED_PORT], [sb, FLIP_PORT], [pa, ALLOWED_PORT]] as Array<[Container, string]>) {
      let ok = false;
      for (let i = 0; i < 25 && !ok; i++) {
        ok = await this.work.probe(c, c.ip, port);
        if (!ok) await sleep(200);
      }
      if (!ok) throw new Error(`the listener on ${c.name}:${port} does not answer from inside ${c.ns}`);
    }
  }

  async round(): Promise<void> {
    const { sb, pa, d0 } = this.c;
    for (const to of d0 ? [sb, d0] : [sb]) await this.allowedFlow(pa, to);
    const flows = this.denied();
    const [from, to, port] = flows[this.turn++ % flows.length] as [Container, Target, string];
    const gen = this.generation;
    const answered = await this.work.probe(from, to.ip, port);
    if (gen !== this.generation) return;
    this.rec.check('denied flow never succeeds', !answered, () => `${from.name} (${from.group}) -> ${to.name}:${port} answered`);
  }

  /** a -> b on the allowed port: an outage (no answer for OUTAGE_MS) is reported once. */
  private async allowedFlow(from: Container, to: Target): Promise<void> {
    const t = this.allowed.get(to.name) ?? { last: Date.now(), out: false };
    this.allowed.set(to.name, t);
    if (await this.work.probe(from, to.ip, ALLOWED_PORT)) {
      t.last = Date.now();
      t.out = false;
    }
    const out = Date.now() - t.last > OUTAGE_MS;
    if (!t.out) this.rec.check('allowed flow answers (no outage > 10 s)', !out, () => `${from.name} -> ${to.name}:${ALLOWED_PORT} has not answered for ${OUTAGE_MS / 1000} s`);
    if (out) t.out = true;
  }

  /** Turns the extra rule on or off; its flow must follow within 10 s. */
  async flip(): Promise<void> {
    const on = !this.flipOn;
    this.generation++;
    this.settled = false;
    try {
      await this.work.flip(on);
    } catch (e) {
      this.rec.event(`policy flip ${on ? 'on' : 'off'} not applied: ${(e as Error).message}`);
      this.settled = true;
      return;
    }
    this.flipOn = on;
    this.rec.event(`policy flip ${on ? 'on' : 'off'}: c -> b:${FLIP_PORT} ${on ? 'allowed' : 'denied'}`);
    const t0 = Date.now();
    let ms = -1;
    while (Date.now() - t0 < 10_000) {
      if ((await this.work.probe(this.c.pc, this.c.sb.ip, FLIP_PORT)) === on) { ms = Date.now() - t0; break; }
      await sleep(250);
    }
    this.rec.check('policy flip converged <= 10 s', ms >= 0, () => `c -> b:${FLIP_PORT} still ${on ? 'denied' : 'allowed'} 10 s after the rule was turned ${on ? 'on' : 'off'}`);
    this.generation++;
    this.settled = true;
  }
}
