/**
 * The lines of one object left out of a restore, as a bitmap of its record count: at most one bit
 * per archived row, however many lines are superseded (a JS Set of line numbers costs tens of bytes a
 * line, and a restore after a whole table was archived twice leaves out half its rows). Pure.
 */
export class LineSet {
  private readonly bits: Uint8Array;
  size = 0;

  constructor(lines: number) {
    this.bits = new Uint8Array(Math.ceil(lines / 8));
  }

  add(line: number): void {
    const i = line >>> 3;
    const bit = 1 << (line & 7);
    if (i >= this.bits.length) throw new RangeError(`line ${line} is past the object's ${this.bits.length * 8} lines`);
    if ((this.bits[i]! & bit) !== 0) return;
    this.bits[i] = this.bits[i]! | bit;
    this.size++;
  }

  has(line: number): boolean {
    const i = line >>> 3;
    return i < this.bits.length && (this.bits[i]! & (1 << (line & 7))) !== 0;
  }
}
