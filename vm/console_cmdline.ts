/**
 * `--console virtio`'s kernel command line (no imports: the CLI loads it
 * up front).
 *
 * @module
 */

/**
 * The kernel command line for a guest console on virtio-console: the
 * user's line plus `console=hvc0` when it names no `console=` (without
 * one, the default line with hvc0 in place of ttyS0), so the guest's
 * console appears where the user expects it. Any other console keeps the
 * line as given.
 *
 * @param append the user's command line, if any
 * @param console where the guest console goes
 * @returns the command line to boot with (undefined: the default)
 * @example
 * ```ts
 * import { consoleCmdline } from "./console_cmdline.ts";
 * console.log(consoleCmdline("root=/dev/vda quiet", "virtio")); // root=/dev/vda quiet console=hvc0
 * console.log(consoleCmdline("console=ttyS0", "virtio")); // console=ttyS0
 * ```
 */
export function consoleCmdline(
  append: string | undefined,
  console: "serial" | "virtio" | "none" | undefined,
): string | undefined {
  if (console !== "virtio") return append;
  if (append === undefined || append.trim() === "") return "console=hvc0";
  return /(^|\s)console=/.test(append) ? append : `${append} console=hvc0`;
}
