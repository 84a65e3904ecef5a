/**
 * A small AML encoder (ACPI spec chapter 20): names, integers, strings,
 * packages, buffers, scopes, devices, methods, and the resource descriptors
 * a _CRS needs. Every function returns the encoded bytes of one term, so
 * terms compose by nesting calls, and the DSDT is their concatenation.
 *
 * @example
 * ```ts
 * import * as aml from "./aml.ts";
 * const dsdtBody = aml.concat(
 *   aml.name("_S5", aml.pkg(aml.integer(5), aml.integer(5), aml.integer(0), aml.integer(0))),
 *   aml.scope("\\_SB", aml.device("COM1", aml.name("_HID", aml.eisaId("PNP0501")))),
 * );
 * console.log(dsdtBody.length);
 * ```
 *
 * @module
 */

export * from "./aml_resources.ts";

/** An encoded AML term. */
export type Aml = Uint8Array<ArrayBuffer>;

const ZERO_OP = 0x00;
const ONE_OP = 0x01;
const NAME_OP = 0x08;
const BYTE_PREFIX = 0x0a;
const WORD_PREFIX = 0x0b;
const DWORD_PREFIX = 0x0c;
const STRING_PREFIX = 0x0d;
const QWORD_PREFIX = 0x0e;
const SCOPE_OP = 0x10;
const BUFFER_OP = 0x11;
const PACKAGE_OP = 0x12;
const METHOD_OP = 0x14;
const DUAL_NAME_PREFIX = 0x2e;
const MULTI_NAME_PREFIX = 0x2f;
const EXT_OP_PREFIX = 0x5b;
const DEVICE_OP = 0x82;
const RETURN_OP = 0xa4;

/**
 * Concatenates terms.
 *
 * @param parts encoded terms
 * @returns one byte array
 * @example
 * ```ts
 * import { concat, integer } from "./aml.ts";
 * console.log(concat(integer(1), integer(2))); // Uint8Array [1, 10, 2]
 * ```
 */
export function concat(...parts: Uint8Array[]): Aml {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Encodes a PkgLength for `n` bytes that follow it: the encoded value counts
 * its own bytes too.
 *
 * @param n length of what follows the PkgLength
 * @returns the PkgLength bytes
 * @example
 * ```ts
 * import { pkgLength } from "./aml.ts";
 * console.log(pkgLength(10)); // Uint8Array [11]
 * ```
 */
export function pkgLength(n: number): Aml {
  if (n + 1 < 0x40) return new Uint8Array([n + 1]);
  for (let k = 2; k <= 4; k++) {
    const total = n + k;
    if (total < 2 ** (4 + 8 * (k - 1))) {
      const out = new Uint8Array(k);
      out[0] = ((k - 1) << 6) | (total & 0xf);
      for (let i = 1; i < k; i++) out[i] = (total >>> (4 + 8 * (i - 1))) & 0xff;
      return out;
    }
  }
  throw new RangeError(`AML package too long: ${n} bytes`);
}

function nameSeg(seg: string): number[] {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) throw new RangeError(`Invalid AML name segment: ${seg}`);
  const s = seg.padEnd(4, "_");
  return [0, 1, 2, 3].map((i) => s.charCodeAt(i));
}

/**
 * Encodes a NameString: "\\_SB.PCI0", "^FOO", "_HID".
 *
 * @param path the ASL path
 * @returns the NameString bytes
 * @example
 * ```ts
 * import { nameString } from "./aml.ts";
 * console.log(nameString("\\_SB")); // Uint8Array [92, 95, 83, 66, 95]
 * ```
 */
export function nameString(path: string): Aml {
  const out: number[] = [];
  let rest = path;
  if (rest.startsWith("\\")) {
    out.push(0x5c);
    rest = rest.slice(1);
  } else {
    while (rest.startsWith("^")) {
      out.push(0x5e);
      rest = rest.slice(1);
    }
  }
  const segs = rest === "" ? [] : rest.split(".");
  if (segs.length === 0) out.push(0x00);
  else if (segs.length === 2) out.push(DUAL_NAME_PREFIX);
  else if (segs.length > 2) {
    if (segs.length > 255) throw new RangeError(`AML path too long: ${path}`);
    out.push(MULTI_NAME_PREFIX, segs.length);
  }
  for (const s of segs) out.push(...nameSeg(s));
  return new Uint8Array(out);
}

/**
 * Encodes an integer constant in its shortest form (Zero, One, Byte, Word,
 * DWord or QWord).
 *
 * @param v a non-negative integer below 2^64
 * @returns the term
 * @example
 * ```ts
 * import { integer } from "./aml.ts";
 * console.log(integer(0x3f8)); // Uint8Array [11, 248, 3]
 * ```
 */
export function integer(v: number | bigint): Aml {
  const b = BigInt(v);
  if (b < 0n || b > 0xffff_ffff_ffff_ffffn) throw new RangeError(`Not an AML integer: ${v}`);
  if (b === 0n) return new Uint8Array([ZERO_OP]);
  if (b === 1n) return new Uint8Array([ONE_OP]);
  const [prefix, size] = b <= 0xffn
    ? [BYTE_PREFIX, 1]
    : b <= 0xffffn
    ? [WORD_PREFIX, 2]
    : b <= 0xffff_ffffn
    ? [DWORD_PREFIX, 4]
    : [QWORD_PREFIX, 8];
  const out = new Uint8Array(1 + size);
  out[0] = prefix;
  for (let i = 0; i < size; i++) out[1 + i] = Number((b >> BigInt(8 * i)) & 0xffn);
  return out;
}

/**
 * Encodes an ASCII string constant.
 *
 * @param s printable ASCII
 * @returns the term
 * @example
 * ```ts
 * import { str } from "./aml.ts";
 * console.log(str("A")); // Uint8Array [13, 65, 0]
 * ```
 */
export function str(s: string): Aml {
  const out = new Uint8Array(s.length + 2);
  out[0] = STRING_PREFIX;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x01 || c > 0x7f) throw new RangeError(`Not an AML ASCII string: ${s}`);
    out[1 + i] = c;
  }
  return out;
}

/**
 * Encodes an EISA id ("PNP0A03") as the DWord constant _HID takes.
 *
 * @param id three capitals and four hex digits
 * @returns the term
 * @example
 * ```ts
 * import { eisaId } from "./aml.ts";
 * console.log(eisaId("PNP0A03")); // DWord 0x030ad041
 * ```
 */
export function eisaId(id: string): Aml {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new RangeError(`Invalid EISA id: ${id}`);
  const c = (i: number) => id.charCodeAt(i) - 0x40;
  const vendor = (c(0) << 10) | (c(1) << 5) | c(2);
  const product = parseInt(id.slice(3), 16);
  const v = ((vendor >> 8) | ((vendor & 0xff) << 8) | ((product >> 8) << 16) |
    ((product & 0xff) << 24)) >>> 0;
  const out = new Uint8Array(5);
  out[0] = DWORD_PREFIX;
  new DataView(out.buffer).setUint32(1, v, true);
  return out;
}

/**
 * Name(path, value).
 *
 * @param path the name
 * @param value a data object (integer, string, package, buffer)
 * @returns the term
 * @example
 * ```ts
 * import { integer, name } from "./aml.ts";
 * name("_UID", integer(0));
 * ```
 */
export function name(path: string, value: Aml): Aml {
  return concat(new Uint8Array([NAME_OP]), nameString(path), value);
}

/**
 * Package(n) { elements }.
 *
 * @param elements data objects
 * @returns the term
 * @example
 * ```ts
 * import { integer, pkg } from "./aml.ts";
 * pkg(integer(5), integer(5));
 * ```
 */
export function pkg(...elements: Aml[]): Aml {
  if (elements.length > 255) throw new RangeError(`AML package has too many elements`);
  const body = concat(new Uint8Array([elements.length]), ...elements);
  return concat(new Uint8Array([PACKAGE_OP]), pkgLength(body.length), body);
}

/**
 * Buffer() { bytes }.
 *
 * @param bytes contents
 * @returns the term
 * @example
 * ```ts
 * import { buffer } from "./aml.ts";
 * buffer(new Uint8Array([1, 2, 3]));
 * ```
 */
export function buffer(bytes: Uint8Array): Aml {
  const body = concat(integer(bytes.length), bytes);
  return concat(new Uint8Array([BUFFER_OP]), pkgLength(body.length), body);
}

/**
 * Scope(path) { terms }.
 *
 * @param path the scope
 * @param terms its contents
 * @returns the term
 * @example
 * ```ts
 * import { scope } from "./aml.ts";
 * scope("\\_SB");
 * ```
 */
export function scope(path: string, ...terms: Aml[]): Aml {
  const body = concat(nameString(path), ...terms);
  return concat(new Uint8Array([SCOPE_OP]), pkgLength(body.length), body);
}

/**
 * Device(path) { terms }.
 *
 * @param path the device name
 * @param terms its contents
 * @returns the term
 * @example
 * ```ts
 * import { device, eisaId, name } from "./aml.ts";
 * device("COM1", name("_HID", eisaId("PNP0501")));
 * ```
 */
export function device(path: string, ...terms: Aml[]): Aml {
  const body = concat(nameString(path), ...terms);
  return concat(new Uint8Array([EXT_OP_PREFIX, DEVICE_OP]), pkgLength(body.length), body);
}

/** Options for {@link method}. */
export interface MethodOptions {
  /** Argument count, 0..7. */
  readonly args?: number;
  /** Whether the method is Serialized. */
  readonly serialized?: boolean;
}

/**
 * Method(path, args, serialized) { terms }.
 *
 * @param path the method name
 * @param terms its body
 * @param options argument count and serialization
 * @returns the term
 * @example
 * ```ts
 * import { integer, method, ret } from "./aml.ts";
 * method("_STA", [ret(integer(0xf))]);
 * ```
 */
export function method(path: string, terms: Aml[], options: MethodOptions = {}): Aml {
  const args = options.args ?? 0;
  if (!Number.isInteger(args) || args < 0 || args > 7) {
    throw new RangeError(`AML methods take 0 to 7 arguments, not ${args}`);
  }
  const flags = args | (options.serialized ? 0x08 : 0);
  const body = concat(nameString(path), new Uint8Array([flags]), ...terms);
  return concat(new Uint8Array([METHOD_OP]), pkgLength(body.length), body);
}

/**
 * Return(value).
 *
 * @param value the term returned
 * @returns the term
 * @example
 * ```ts
 * import { integer, ret } from "./aml.ts";
 * ret(integer(0xf));
 * ```
 */
export function ret(value: Aml): Aml {
  return concat(new Uint8Array([RETURN_OP]), value);
}

// Resource descriptors (ACPI 6.x section 6.4).

/**
 * ResourceTemplate() { descriptors }: a buffer ending with an End Tag.
 *
 * @param descriptors encoded resource descriptors
 * @returns the buffer term
 * @example
 * ```ts
 * import { ioPort, irqNoFlags, resourceTemplate } from "./aml.ts";
 * resourceTemplate(ioPort(0x3f8, 0x3f8, 0, 8), irqNoFlags(4));
 * ```
 */
export function resourceTemplate(...descriptors: Uint8Array[]): Aml {
  // End Tag with checksum 0: "treat as correctly summed".
  return buffer(concat(...descriptors, new Uint8Array([0x79, 0x00])));
}
