/**
 * DES (FIPS 46-3) for VNC authentication, written out because neither Web
 * Crypto nor Deno's node:crypto offers des-ecb. Only what RFB needs: one key
 * schedule, ECB encryption of 8-byte blocks, and VNC's key convention (the
 * password's bytes with each byte's bits mirrored, RFB 3.8 §7.2.2).
 *
 * Bit numbering follows the standard: bit 1 is the most significant bit of
 * the first byte. Blocks are handled as two 32-bit halves.
 *
 * @module
 */

const PC1 = [
  57,
  49,
  41,
  33,
  25,
  17,
  9,
  1,
  58,
  50,
  42,
  34,
  26,
  18,
  10,
  2,
  59,
  51,
  43,
  35,
  27,
  19,
  11,
  3,
  60,
  52,
  44,
  36,
  63,
  55,
  47,
  39,
  31,
  23,
  15,
  7,
  62,
  54,
  46,
  38,
  30,
  22,
  14,
  6,
  61,
  53,
  45,
  37,
  29,
  21,
  13,
  5,
  28,
  20,
  12,
  4,
];
const PC2 = [
  14,
  17,
  11,
  24,
  1,
  5,
  3,
  28,
  15,
  6,
  21,
  10,
  23,
  19,
  12,
  4,
  26,
  8,
  16,
  7,
  27,
  20,
  13,
  2,
  41,
  52,
  31,
  37,
  47,
  55,
  30,
  40,
  51,
  45,
  33,
  48,
  44,
  49,
  39,
  56,
  34,
  53,
  46,
  42,
  50,
  36,
  29,
  32,
];
const SHIFTS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
const IP = [
  58,
  50,
  42,
  34,
  26,
  18,
  10,
  2,
  60,
  52,
  44,
  36,
  28,
  20,
  12,
  4,
  62,
  54,
  46,
  38,
  30,
  22,
  14,
  6,
  64,
  56,
  48,
  40,
  32,
  24,
  16,
  8,
  57,
  49,
  41,
  33,
  25,
  17,
  9,
  1,
  59,
  51,
  43,
  35,
  27,
  19,
  11,
  3,
  61,
  53,
  45,
  37,
  29,
  21,
  13,
  5,
  63,
  55,
  47,
  39,
  31,
  23,
  15,
  7,
];
const FP = [
  40,
  8,
  48,
  16,
  56,
  24,
  64,
  32,
  39,
  7,
  47,
  15,
  55,
  23,
  63,
  31,
  38,
  6,
  46,
  14,
  54,
  22,
  62,
  30,
  37,
  5,
  45,
  13,
  53,
  21,
  61,
  29,
  36,
  4,
  44,
  12,
  52,
  20,
  60,
  28,
  35,
  3,
  43,
  11,
  51,
  19,
  59,
  27,
  34,
  2,
  42,
  10,
  50,
  18,
  58,
  26,
  33,
  1,
  41,
  9,
  49,
  17,
  57,
  25,
];
const E = [
  32,
  1,
  2,
  3,
  4,
  5,
  4,
  5,
  6,
  7,
  8,
  9,
  8,
  9,
  10,
  11,
  12,
  13,
  12,
  13,
  14,
  15,
  16,
  17,
  16,
  17,
  18,
  19,
  20,
  21,
  20,
  21,
  22,
  23,
  24,
  25,
  24,
  25,
  26,
  27,
  28,
  29,
  28,
  29,
  30,
  31,
  32,
  1,
];
const P = [
  16,
  7,
  20,
  21,
  29,
  12,
  28,
  17,
  1,
  15,
  23,
  26,
  5,
  18,
  31,
  10,
  2,
  8,
  24,
  14,
  32,
  27,
  3,
  9,
  19,
  13,
  30,
  6,
  22,
  11,
  4,
  25,
];
const S = [
  "e4d12fb83a6c5907 0f74e2d1a6cb9538 41e8d62bfc973a50 fc8249175b3ea06d",
  "f18e6b34972dc05a 3d47f28ec01a69b5 0e7ba4d158c6932f d8a13f42b67c05e9",
  "a09e63f51dc7b428 d709346a285ecbf1 d6498f30b12c5ae7 1ad069874fe3b52c",
  "7de3069a1285bc4f d8b56f03472c1ae9 a690cb7df13e5284 3f06a1d8945bc72e",
  "2c417ab6853fd0e9 eb2c47d150fa3986 421bad78f9c5630e b8c71e2d6f09a453",
  "c1af92680d34e75b af427c9561de0b38 9ef528c3704a1db6 432c95fabe17608d",
  "4b2ef08d3c975a61 d0b7491ae35c2f86 14bdc37eaf680592 6bd814a7950fe23c",
  "d2846fb1a93e50c7 1fd8a374c56b0e92 7b419ce206adf358 21e74a8dfc90356b",
].map((row) => row.replace(/ /g, "").split("").map((h) => parseInt(h, 16)));

/** Bit `pos` (1-based from the MSB) of a 64-bit value held as [hi, lo]. */
function bit64(hi: number, lo: number, pos: number): number {
  return pos <= 32 ? (hi >>> (32 - pos)) & 1 : (lo >>> (64 - pos)) & 1;
}

/** Applies a permutation table to [hi, lo] (64 bits in), giving up to 64 bits as [hi, lo]. */
function permute(hi: number, lo: number, table: readonly number[]): [number, number] {
  let oh = 0, ol = 0;
  for (let i = 0; i < table.length; i++) {
    const b = bit64(hi, lo, table[i]);
    if (i < 32) oh = (oh << 1) | b;
    else ol = (ol << 1) | b;
  }
  // Left-align a short result in its word.
  if (table.length < 32) oh <<= 32 - table.length;
  else if (table.length < 64) ol <<= 64 - table.length;
  return [oh >>> 0, ol >>> 0];
}

function rotl28(v: number, n: number): number {
  return ((v << n) | (v >>> (28 - n))) & 0xfffffff;
}

/** The 16 round keys, each 48 bits as two 24-bit halves. */
function keySchedule(key: Uint8Array): Uint32Array {
  const hi = ((key[0] << 24) | (key[1] << 16) | (key[2] << 8) | key[3]) >>> 0;
  const lo = ((key[4] << 24) | (key[5] << 16) | (key[6] << 8) | key[7]) >>> 0;
  const [ph, pl] = permute(hi, lo, PC1); // 56 bits, left-aligned
  let c = ph >>> 4;
  let d = (((ph & 0xf) << 24) | (pl >>> 8)) & 0xfffffff;
  const out = new Uint32Array(32);
  for (let r = 0; r < 16; r++) {
    c = rotl28(c, SHIFTS[r]);
    d = rotl28(d, SHIFTS[r]);
    // CD as 56 bits, left-aligned in 64.
    const cdHi = ((c << 4) | (d >>> 24)) >>> 0;
    const cdLo = (d << 8) >>> 0;
    const [kh, kl] = permute(cdHi, cdLo, PC2); // 48 bits: 32 in kh, 16 in kl's top
    out[2 * r] = kh >>> 8; // first 24 bits
    out[2 * r + 1] = ((kh & 0xff) << 16) | (kl >>> 16); // last 24 bits
  }
  return out;
}

function feistel(r: number, k0: number, k1: number): number {
  const [eh, el] = permute(r, 0, E); // 48 bits: 32 in eh, 16 in el's top
  const x0 = (eh >>> 8) ^ k0;
  const x1 = (((eh & 0xff) << 16) | (el >>> 16)) ^ k1;
  let out = 0;
  for (let i = 0; i < 8; i++) {
    const six = i < 4 ? (x0 >>> (18 - 6 * i)) & 0x3f : (x1 >>> (18 - 6 * (i - 4))) & 0x3f;
    const row = ((six & 0x20) >>> 4) | (six & 1);
    const col = (six >>> 1) & 0xf;
    out = (out << 4) | S[i][row * 16 + col];
  }
  return permute(out >>> 0, 0, P)[0];
}

/**
 * Encrypts one 8-byte block with DES in ECB mode.
 *
 * @param key 8 key bytes (parity bits ignored)
 * @param block 8 bytes of plaintext
 * @returns 8 bytes of ciphertext
 * @example
 * ```ts
 * import { desEncryptBlock } from "./des.ts";
 * const hex = (s: string) => new Uint8Array(s.match(/../g)!.map((h) => parseInt(h, 16)));
 * desEncryptBlock(hex("133457799bbcdff1"), hex("0123456789abcdef")); // 85e813540f0ab405
 * ```
 */
export function desEncryptBlock(key: Uint8Array, block: Uint8Array): Uint8Array {
  if (key.length !== 8 || block.length !== 8) {
    throw new RangeError("DES works on 8-byte keys and blocks");
  }
  const ks = keySchedule(key);
  const hi = ((block[0] << 24) | (block[1] << 16) | (block[2] << 8) | block[3]) >>> 0;
  const lo = ((block[4] << 24) | (block[5] << 16) | (block[6] << 8) | block[7]) >>> 0;
  let [l, r] = permute(hi, lo, IP);
  for (let i = 0; i < 16; i++) {
    const next = (l ^ feistel(r, ks[2 * i], ks[2 * i + 1])) >>> 0;
    l = r;
    r = next;
  }
  const [oh, ol] = permute(r, l, FP);
  return new Uint8Array([
    oh >>> 24,
    (oh >>> 16) & 0xff,
    (oh >>> 8) & 0xff,
    oh & 0xff,
    ol >>> 24,
    (ol >>> 16) & 0xff,
    (ol >>> 8) & 0xff,
    ol & 0xff,
  ]);
}

function mirror(b: number): number {
  let r = 0;
  for (let i = 0; i < 8; i++) r |= ((b >>> i) & 1) << (7 - i);
  return r;
}

/**
 * The VNC key for a password: its first 8 bytes (zero-padded), each byte's
 * bits mirrored.
 *
 * @param password the password
 * @returns the 8-byte DES key
 */
export function vncKey(password: Uint8Array): Uint8Array {
  const key = new Uint8Array(8);
  for (let i = 0; i < 8 && i < password.length; i++) key[i] = mirror(password[i]);
  return key;
}

/**
 * The response a client sends to a VNC authentication challenge.
 *
 * @param password the password bytes (only the first 8 count)
 * @param challenge the server's 16 random bytes
 * @returns 16 bytes: both halves of the challenge encrypted with the VNC key
 * @example
 * ```ts
 * import { vncAuthResponse } from "./des.ts";
 * const r = vncAuthResponse(new TextEncoder().encode("secret"), new Uint8Array(16));
 * console.log(r.length); // 16
 * ```
 */
export function vncAuthResponse(password: Uint8Array, challenge: Uint8Array): Uint8Array {
  if (challenge.length !== 16) throw new RangeError("VNC challenges are 16 bytes");
  const key = vncKey(password);
  const out = new Uint8Array(16);
  out.set(desEncryptBlock(key, challenge.subarray(0, 8)), 0);
  out.set(desEncryptBlock(key, challenge.subarray(8, 16)), 8);
  return out;
}
