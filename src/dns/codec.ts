import { parseIp6 } from '../model/plain.js';
/**
 * The few parts of the DNS wire format (RFC 1035) the agent needs: read one question, write an answer
 * with A records. Queries are small and flat; anything else is rejected with the right response code.
 */

export const TYPE_A = 1;
export const TYPE_AAAA = 28;
export const TYPE_ANY = 255;
export const CLASS_IN = 1;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface Query {
  id: number;
  /** Recursion desired, echoed in the answer. */
  rd: boolean;
  /** Lower case, without the trailing dot. */
  name: string;
  type: number;
  qclass: number;
  /** The question section as received, echoed in the answer. */
  question: Buffer;
}

/** Why a message is not a query we can read: the response code to send, or 'drop' when no header can be echoed. */
export class BadQuery extends Error {
  constructor(readonly rcode: number | 'drop', msg: string, readonly id = 0) {
    super(msg);
  }
}

export function parseQuery(msg: Buffer): Query {
  if (msg.length < 12) throw new BadQuery('drop', 'shorter than a DNS header');
  const id = msg.readUInt16BE(0);
  const flags = msg.readUInt16BE(2);
  if (flags & 0x8000) throw new BadQuery('drop', 'a response, not a query');
  const opcode = (flags >> 11) & 0xf;
  if (opcode !== 0) throw new BadQuery(RCODE.NOTIMP, `opcode ${opcode} is not supported`, id);
  if (msg.readUInt16BE(4) !== 1) throw new BadQuery(RCODE.FORMERR, 'exactly one question is supported', id);
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    const len = msg[at];
    if (len === undefined) throw new BadQuery(RCODE.FORMERR, 'the question is cut short', id);
    if (len === 0) break;
    if (len > 63) throw new BadQuery(RCODE.FORMERR, 'a label is longer than 63 bytes or compressed', id);
    if (at + 1 + len > msg.length) throw new BadQuery(RCODE.FORMERR, 'the question is cut short', id);
    const label = msg.toString('latin1', at + 1, at + 1 + len).toLowerCase();
    // A dot inside a label would read as two labels once joined: ["x", "blue", "weft."] is not under
    // .weft as the wire says, yet "x.blue.weft." as text, and such a name went upstream.
    if (label.includes('.')) throw new BadQuery(RCODE.FORMERR, 'a label holds a dot', id);
    labels.push(label);
    at += 1 + len;
  }
  at += 1;
  if (at + 4 > msg.length) throw new BadQuery(RCODE.FORMERR, 'the question is cut short', id);
  const name = labels.join('.');
  if (name.length > 253) throw new BadQuery(RCODE.FORMERR, 'the name is longer than 253 bytes', id);
  return { id, rd: (flags & 0x0100) !== 0, name, type: msg.readUInt16BE(at), qclass: msg.readUInt16BE(at + 2), question: msg.subarray(12, at + 4) };
}

export interface Reply {
  rcode: number;
  /** Authoritative: set for names under `.weft`, which only we answer. */
  aa: boolean;
  /** Recursion available: set when names outside `.weft` are forwarded. */
  ra: boolean;
  addresses: readonly string[];
  ttl: number;
}

/**
 * `maxSize`: the most the transport carries (512 over UDP without EDNS, 65535 over TCP): the answers that
 * do not fit are left out and TC is set, so the client asks again over TCP instead of the agent throwing.
 */
export function encodeReply(q: Pick<Query, 'id' | 'rd' | 'question'>, r: Reply, maxSize = 65535): Buffer {
  const header = Buffer.alloc(12);
  const all = r.addresses.map((ip) => {
    // An IPv6 address (dual-stack endpoints) is an AAAA record of 16 bytes; the rest are A records.
    const six = ip.includes(':') ? parseIp6(ip) : undefined;
    const a = Buffer.alloc(six !== undefined ? 28 : 16);
    a.writeUInt16BE(0xc00c, 0); // a pointer to the question's name
    a.writeUInt16BE(six !== undefined ? TYPE_AAAA : TYPE_A, 2);
    a.writeUInt16BE(CLASS_IN, 4);
    a.writeUInt32BE(r.ttl, 6);
    if (six !== undefined) {
      a.writeUInt16BE(16, 10);
      for (let i = 0; i < 16; i++) a.writeUInt8(Number((six >> BigInt(8 * (15 - i))) & 0xffn), 12 + i);
    } else {
      a.writeUInt16BE(4, 10);
      ip.split('.').forEach((o, i) => a.writeUInt8(Number(o), 12 + i));
    }
    return a;
  });
  let size = 12 + q.question.length;
  const answers: Buffer[] = [];
  for (const a of all) {
    if (size + a.length > maxSize) break;
    size += a.length;
    answers.push(a);
  }
  const tc = answers.length < all.length;
  header.writeUInt16BE(q.id, 0);
  header.writeUInt16BE(0x8000 | (r.aa ? 0x0400 : 0) | (tc ? 0x0200 : 0) | (q.rd ? 0x0100 : 0) | (r.ra ? 0x0080 : 0) | (r.rcode & 0xf), 2);
  header.writeUInt16BE(q.question.length ? 1 : 0, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, q.question, ...answers]);
}

/** An error reply to a message that could not be parsed past its header. */
export function encodeError(id: number, rcode: number): Buffer {
  return encodeReply({ id, rd: false, question: Buffer.alloc(0) }, { rcode, aa: false, ra: false, addresses: [], ttl: 0 });
}
