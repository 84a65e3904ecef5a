/**
 * The display part of a VmConfig made concrete: whether there is a
 * framebuffer, its mode, and the VNC server's address and password (read
 * from its file now, so a mistake is one line before any KVM object).
 *
 * @module
 */
import { VmConfigError } from "../../vm/config.ts";
import { readFileFfi } from "../../sys/fd.ts";
import { ErrnoError } from "../../sys/errno.ts";
import { parseVncOption, passwordFromFile, type VncOption } from "./options.ts";
/** The mode with --vnc and no size given. */
export const DEFAULT_WIDTH = 1024;
/** The mode with --vnc and no size given. */
export const DEFAULT_HEIGHT = 768;

/** A display to build. */
export interface ResolvedDisplay {
  /** Mode width. */
  width: number;
  /** Mode height. */
  height: number;
  /** Serve it over VNC. */
  vnc?: VncOption;
  /** The VNC password. */
  password?: Uint8Array;
}

/**
 * Resolves `display` and `vnc` from a VmConfig.
 *
 * @param display `none`, a mode, or absent
 * @param vnc the VNC option string (`:N[,password-file=PATH][,websocket[=PORT]]`)
 * @returns the display, or undefined for none
 * @throws VmConfigError naming the problem
 * @example
 * ```ts
 * import { resolveDisplay } from "./display_config.ts";
 * console.log(resolveDisplay(undefined, ":1")?.vnc?.port); // 5901
 * ```
 */
export function resolveDisplay(
  display: "none" | { width: number; height: number } | undefined,
  vnc: string | undefined,
): ResolvedDisplay | undefined {
  if (display === "none") {
    if (vnc !== undefined) throw new VmConfigError("--vnc needs a display: drop --display none");
    return undefined;
  }
  if (display === undefined && vnc === undefined) return undefined;
  // The mode's limits are the framebuffer's (checked by vm/resolve.ts).
  const width = display?.width ?? DEFAULT_WIDTH, height = display?.height ?? DEFAULT_HEIGHT;
  if (vnc === undefined) return { width, height };
  let option: VncOption;
  try {
    option = parseVncOption(vnc);
  } catch (e) {
    throw new VmConfigError(`Invalid --vnc '${vnc}': ${(e as Error).message}`);
  }
  let password: Uint8Array | undefined;
  if (option.passwordFile !== undefined) {
    try {
      password = passwordFromFile(readFileFfi(option.passwordFile, 4096));
    } catch (e) {
      const why = e instanceof ErrnoError ? e.description : (e as Error).message;
      throw new VmConfigError(`cannot read VNC password file '${option.passwordFile}': ${why}`);
    }
  }
  return { width, height, vnc: option, password };
}
