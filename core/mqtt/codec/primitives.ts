/**
 * Data representations of MQTT 5.0 section 1.5 (3.1.1 section 1.5): one/two/four byte
 * integers, Variable Byte Integer, UTF-8 string, binary data, string pair. A Reader walks
 * one packet; a Writer fills one Uint8Array whose size was computed beforehand.
 */
import { malformed, protocolError } from "./errors";
import { decodeUtf8, utf8Length, writeUtf8 } from "./utf8";

/** Largest Variable Byte Integer: 0xFF 0xFF 0xFF 0x7F. */
export const MAX_VBI = 268_435_455;
/** Largest possible packet: 1 type byte, 4 length bytes, MAX_VBI remaining bytes. */
export const MAX_PACKET_SIZE = MAX_VBI + 5;

export class Reader {
  /** Reads stop at `end`; property parsing narrows it to the property block. */
  end: number;
  /** 5.0 requires the minimum number of bytes in a Variable Byte Integer [MQTT-1.5.5-1]. */
  strictVbi = false;

  constructor(
    readonly buf: Uint8Array,
    public pos = 0,
    end = buf.length,
  ) {
    this.end = end;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  need(n: number): void {
    if (this.pos + n > this.end) malformed("Packet ends before the field it declares");
  }

  u8(): number {
    if (this.pos >= this.end) malformed("Packet ends before the field it declares");
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const b = this.buf;
    const v = (b[this.pos]! << 8) | b[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }

  /** Variable Byte Integer (section 1.5.5): at most four bytes. */
  vbi(): number {
    let value = 0;
    let mul = 1;
    let n = 0;
    let b: number;
    do {
      if (n === 4) malformed("Variable Byte Integer longer than four bytes");
      b = this.u8();
      value += (b & 0x7f) * mul;
      mul *= 128;
      n++;
    } while (b & 0x80);
    if (this.strictVbi && n > 1 && b === 0) {
      malformed("Variable Byte Integer not in its minimum number of bytes [MQTT-1.5.5-1]");
    }
    return value;
  }

  /** UTF-8 Encoded String: two-byte length then the bytes (section 1.5.4). */
  string(): string {
    const len = this.u16();
    this.need(len);
    const start = this.pos;
    this.pos += len;
    return decodeUtf8(this.buf, start, this.pos);
  }

  /** Binary Data: two-byte length then the bytes (section 1.5.6). A copy, not a view. */
  binary(): Uint8Array {
    const len = this.u16();
    return this.bytes(len);
  }

  /** The next n bytes, copied so the packet does not pin the frame's buffer. */
  bytes(n: number): Uint8Array {
    this.need(n);
    const start = this.pos;
    this.pos += n;
    return this.buf.slice(start, this.pos);
  }

  /** Everything up to `end` (a PUBLISH payload). */
  rest(): Uint8Array {
    return this.bytes(this.remaining());
  }
}

export function vbiLength(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_VBI) {
    throw new RangeError(`Variable Byte Integer out of range: ${n}`);
  }
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

/** Size on the wire of a UTF-8 Encoded String; throws past 65,535 bytes. */
export function stringSize(s: string): number {
  const n = utf8Length(s);
  if (n > 0xffff) throw new RangeError(`String longer than 65535 bytes (${n})`);
  return 2 + n;
}

/** Size on the wire of Binary Data; throws past 65,535 bytes. */
export function binarySize(b: Uint8Array): number {
  if (b.length > 0xffff) throw new RangeError(`Binary Data longer than 65535 bytes (${b.length})`);
  return 2 + b.length;
}

/** Size of a whole packet whose Remaining Length is `remaining`. */
export function packetSize(remaining: number): number {
  return 1 + vbiLength(remaining) + remaining;
}

export class Writer {
  readonly buf: Uint8Array;
  pos = 0;

  /** Allocates the whole packet and writes its fixed header. */
  constructor(firstByte: number, remaining: number) {
    this.buf = new Uint8Array(packetSize(remaining));
    this.buf[0] = firstByte;
    this.pos = 1;
    this.vbi(remaining);
  }

  u8(v: number): void {
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.buf[this.pos++] = v >>> 8;
    this.buf[this.pos++] = v;
  }

  u32(v: number): void {
    const b = this.buf;
    b[this.pos++] = v >>> 24;
    b[this.pos++] = v >>> 16;
    b[this.pos++] = v >>> 8;
    b[this.pos++] = v;
  }

  vbi(v: number): void {
    do {
      let byte = v % 128;
      v = Math.floor(v / 128);
      if (v > 0) byte |= 0x80;
      this.buf[this.pos++] = byte;
    } while (v > 0);
  }

  /** Reserves the length, encodes in place, then fills the length in. */
  string(s: string): void {
    const start = this.pos;
    this.pos = writeUtf8(this.buf, start + 2, s);
    const len = this.pos - start - 2;
    this.buf[start] = len >>> 8;
    this.buf[start + 1] = len;
  }

  binary(b: Uint8Array): void {
    this.u16(b.length);
    this.bytes(b);
  }

  bytes(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** The packet; a size mismatch is a bug in the encoder, not in the input. */
  done(): Uint8Array {
    if (this.pos !== this.buf.length) {
      throw new Error(`Encoder wrote ${this.pos} of ${this.buf.length} bytes`);
    }
    return this.buf;
  }
}

/** Packet Identifier checks shared by the encoders: 1..65535 [MQTT-2.2.1-3]. */
export function requirePacketId(id: number | undefined, what: string): number {
  if (id === undefined || !Number.isInteger(id) || id < 1 || id > 0xffff) {
    throw new RangeError(`${what} needs a Packet Identifier in 1..65535, got ${id}`);
  }
  return id;
}

/** Decoder side: a zero Packet Identifier is a Protocol Error [MQTT-2.2.1-3] [MQTT-2.3.1-1]. */
export function readPacketId(r: Reader, what: string): number {
  const id = r.u16();
  if (id === 0) protocolError(`${what} has Packet Identifier 0 [MQTT-2.2.1-3]`);
  return id;
}
