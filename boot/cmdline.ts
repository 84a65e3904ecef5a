/**
 * The kernel command line: checked, NUL-terminated, written at
 * {@link CMDLINE_START}.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import { CMDLINE_MAX_SIZE, CMDLINE_START } from "./layout.ts";

/**
 * Encodes a command line, checking it has no NUL and fits `max` bytes
 * (excluding the NUL).
 *
 * @param cmdline the command line
 * @param max the longest the kernel accepts (setup_header.cmdline_size)
 * @returns the bytes, NUL-terminated
 * @throws {KernelLoaderError} if it is too long or holds a NUL
 * @example
 * ```ts
 * import { encodeCmdline } from "./cmdline.ts";
 * console.log(encodeCmdline("console=ttyS0", 2047).length); // 14
 * ```
 */
export function encodeCmdline(cmdline: string, max: number): Uint8Array<ArrayBuffer> {
  const text = new TextEncoder().encode(cmdline);
  if (text.includes(0)) throw new KernelLoaderError("Kernel command line contains a NUL byte");
  const limit = Math.min(max, CMDLINE_MAX_SIZE - 1);
  if (text.length > limit) {
    throw new KernelLoaderError(
      `Kernel command line too long: ${text.length} bytes, the kernel accepts ${limit}`,
    );
  }
  const out = new Uint8Array(text.length + 1);
  out.set(text);
  return out;
}

/**
 * Writes an encoded command line at {@link CMDLINE_START}.
 *
 * @param mem guest RAM
 * @param bytes output of {@link encodeCmdline}
 * @returns its guest address and size including the NUL
 * @example
 * ```ts
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { encodeCmdline, writeCmdline } from "./cmdline.ts";
 * const mem = GuestMemory.fromBuffer(new ArrayBuffer(1 << 20));
 * console.log(writeCmdline(mem, encodeCmdline("quiet", 2047)));
 * ```
 */
export function writeCmdline(
  mem: GuestMemory,
  bytes: Uint8Array,
): { addr: number; size: number } {
  mem.write(CMDLINE_START, bytes);
  return { addr: CMDLINE_START, size: bytes.length };
}
