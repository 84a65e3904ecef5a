/**
 * The demo guest's bytes, assembled ahead of time: exactly what
 * `demoGuest()` (guests/demo.ts) assembles from its source. The CLI boots
 * these, so a demo run neither loads nor runs the assembler (15-25 ms of the
 * ~100 ms to the first KVM_RUN natively, most of a second in the nested KVM
 * host). guests_test.ts checks them against the assembler byte for byte;
 * after a change to the demo's source, `deno run guests/demo_image.ts` prints
 * the new lines.
 *
 * @module
 */

/** Guest-physical address of the image's first byte (GUEST_LOAD_ADDR). */
export const DEMO_LOAD_ADDR = 0x1000;
/** Real-mode IP (CS=0) where the vCPU starts. */
export const DEMO_ENTRY = 0x1000;
/** RAM the demo needs at least (GUEST_MIN_RAM). */
export const DEMO_MIN_RAM = 0x10000;

const DEMO_HEX = [
  "fa0f0116f8120f20c06683c8010f22c066ea18100000080066b810008ed88ec08ed081e4ffff0000fcbf0080000031c0",
  "b900180000f3abc7050080000003900000bf00900000b803a00000b904000000890781c00010000083c708e2f3bf00a0",
  "0000b883000000b900080000890781c00000200083c708e2f30f20e083c8200f22e0b8008000000f22d8b9800000c00f",
  "3281c8000100000f300f20c081c8000000800f22c0eaac100000180089e4eb0048be0511000000000000e80e00000066",
  "ba040666b8003466effaf4ebfc66baf8038a0684c07406ee48ffc6ebf4c34989c066baf803b91000000049c1c0044489",
  "c083e00f80f80a720380c02780c030eeffc975e6c30d0a20202b2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d",
  "2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2b0d0a20207c20206465",
  "6e6f766d6d2064656d6f2067756573742020202020202020202020202020202020202020202020202020202020202020",
  "20202020202020207c0d0a20207c202048656c6c6f2066726f6d2036342d626974206c6f6e67206d6f64652c206f6e20",
  "4b564d2c2064726976656e2062792044656e6f204646492e20207c0d0a20207c20205468697320746578742077656e74",
  "206f7574207468726f7567682061203136353530412055415254206f6e20434f4d3120283078336638292c207c0d0a20",
  "207c20206f6e6520706f72742d492f4f20657869742070657220627974652c2068616e646c656420696e207468652076",
  "6370752d3020576f726b65722e207c0d0a20207c20204e6f7720706f776572696e67206f6666207468726f7567682041",
  "43504920504d31615f434e5420285335292e2e2e2020202020202020202020207c0d0a20202b2d2d2d2d2d2d2d2d2d2d",
  "2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d2d",
  "2d2d2b0d0a0000000000000000000000ffff0000009acf00ffff00000092cf00ffff0000009aaf001f00d8120000",
].join("");

/** The demo guest as the VMM loads it. */
export interface DemoImage {
  /** Bytes to copy into guest RAM at `loadAddr`. */
  code: Uint8Array;
  /** Guest-physical address of `code[0]`. */
  loadAddr: number;
  /** Real-mode IP (with CS=0) where the vCPU starts. */
  entry: number;
}

/**
 * The demo guest's image, decoded from the bytes above.
 *
 * @returns a fresh copy of the image
 * @example
 * ```ts
 * import { demoImage } from "./demo_image.ts";
 * const { code, loadAddr, entry } = demoImage();
 * ```
 */
export function demoImage(): DemoImage {
  const code = new Uint8Array(DEMO_HEX.length / 2);
  for (let i = 0; i < code.length; i++) {
    code[i] = parseInt(DEMO_HEX.slice(2 * i, 2 * i + 2), 16);
  }
  return { code, loadAddr: DEMO_LOAD_ADDR, entry: DEMO_ENTRY };
}

/**
 * The lines of `DEMO_HEX` for an assembled image, as this file spells them.
 *
 * @param code the assembled bytes
 * @returns the array's lines
 * @example
 * ```ts
 * import { demoImage, demoImageLines } from "./demo_image.ts";
 * console.log(demoImageLines(demoImage().code));
 * ```
 */
export function demoImageLines(code: Uint8Array): string {
  const hex = Array.from(code, (b) => b.toString(16).padStart(2, "0")).join("");
  return hex.match(/.{1,96}/g)!.map((l) => `  "${l}",`).join("\n");
}

if (import.meta.main) {
  import("./demo.ts").then(({ demoGuest }) => console.log(demoImageLines(demoGuest().code)));
}
