/** A fixed-size bit set that serialises to base64, so a network's allocations are one store value. */
export class Bitmap {
  private constructor(readonly size: number, private readonly bytes: Uint8Array) {}

  static empty(size: number): Bitmap {
    return new Bitmap(size, new Uint8Array(Math.ceil(size / 8)));
  }

  static decode(size: number, base64: string): Bitmap {
    const buf = Buffer.from(base64, 'base64');
    const bytes = new Uint8Array(Math.ceil(size / 8));
    bytes.set(buf.subarray(0, bytes.length));
    return new Bitmap(size, bytes);
  }

  encode(): string {
    return Buffer.from(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength).toString('base64');
  }

  has(i: number): boolean {
    return ((this.bytes[i >> 3] ?? 0) & (1 << (i & 7))) !== 0;
  }

  set(i: number): void {
    this.bytes[i >> 3] = (this.bytes[i >> 3] ?? 0) | (1 << (i & 7));
  }

  clear(i: number): void {
    this.bytes[i >> 3] = (this.bytes[i >> 3] ?? 0) & ~(1 << (i & 7));
  }

  /** Lowest clear bit in [from, to], or -1. Skips full bytes so a mostly-full /16 is scanned quickly. */
  firstClear(from: number, to: number): number {
    let i = from;
    while (i <= to) {
      if ((i & 7) === 0 && i + 7 <= to && this.bytes[i >> 3] === 0xff) {
        i += 8;
        continue;
      }
      if (!this.has(i)) return i;
      i++;
    }
    return -1;
  }

  count(): number {
    let n = 0;
    for (const b of this.bytes) {
      let v = b;
      while (v) {
        v &= v - 1;
        n++;
      }
    }
    return n;
  }
}
