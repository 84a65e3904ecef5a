/**
 * The `--vnc` option, spelled as QEMU's: `:N` (display N, TCP port
 * 5900+N on 127.0.0.1), `HOST:N` (an IPv4 or bracketed IPv6 literal), then
 * comma-separated `password-file=PATH` (the password's first line; never on
 * the command line), `websocket[=PORT|on]` (WebSocket for noVNC, port
 * 5700+N unless given) and `tablet=on|off` (whether --vnc brings a virtio
 * tablet; off leaves pointer events to the PS/2 mouse, as QEMU without a
 * tablet device).
 *
 * @module
 */

/** A parsed --vnc option. */
export interface VncOption {
  /** Listen address. */
  host: string;
  /** TCP port (5900 + display). */
  port: number;
  /** Display number. */
  display: number;
  /** Where the password is. */
  passwordFile?: string;
  /** WebSocket listen port. */
  websocketPort?: number;
  /** `tablet=off`: no virtio tablet; pointer events go to the PS/2 mouse. */
  tablet?: boolean;
}

/** VNC's base TCP port. */
export const VNC_BASE_PORT = 5900;
/** QEMU's base WebSocket port. */
export const WEBSOCKET_BASE_PORT = 5700;

/**
 * Parses a --vnc value.
 *
 * @param spec e.g. `:1,password-file=/run/vnc.pw,websocket=5701`
 * @returns the option
 * @throws TypeError naming the problem (the CLI turns it into one line, exit 1)
 * @example
 * ```ts
 * import { parseVncOption } from "./options.ts";
 * console.log(parseVncOption(":1").port); // 5901
 * ```
 */
export function parseVncOption(spec: string): VncOption {
  const [addr, ...opts] = spec.split(",");
  const m = /^(\[[0-9a-fA-F:]+\]|[0-9.]*|localhost):(\d{1,5})$/.exec(addr);
  if (!m) throw new TypeError(`expected :N or HOST:N, got '${addr}'`);
  const display = Number(m[2]);
  const port = VNC_BASE_PORT + display;
  if (port > 65535) throw new TypeError(`display ${display} is out of range`);
  const host = m[1] === "" || m[1] === "localhost" ? "127.0.0.1" : m[1].replace(/^\[|\]$/g, "");
  if (/^[0-9.]+$/.test(host) && !/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.test(host)) {
    throw new TypeError(`'${m[1]}' is not an IPv4 address`);
  }
  if (host.split(".").some((p) => Number(p) > 255)) {
    throw new TypeError(`'${host}' is not an IPv4 address`);
  }
  const out: VncOption = { host, port, display };
  for (const o of opts) {
    const eq = o.indexOf("=");
    const key = eq < 0 ? o : o.slice(0, eq);
    const value = eq < 0 ? undefined : o.slice(eq + 1);
    if (key === "password-file") {
      if (!value) throw new TypeError("password-file needs a path");
      out.passwordFile = value;
    } else if (key === "websocket") {
      if (value === undefined || value === "on") out.websocketPort = WEBSOCKET_BASE_PORT + display;
      else if (/^\d{1,5}$/.test(value) && Number(value) <= 65535) out.websocketPort = Number(value);
      else throw new TypeError(`websocket wants on or a port, got '${value}'`);
    } else if (key === "tablet") {
      if (value !== "on" && value !== "off") {
        throw new TypeError(`tablet wants on or off, got '${value ?? ""}'`);
      }
      out.tablet = value === "on";
    } else if (key === "password") {
      throw new TypeError("put the password in a file and use password-file=PATH");
    } else {
      throw new TypeError(`unknown option '${key}'`);
    }
  }
  return out;
}

/**
 * The VNC password from a password file: its first line (RFB uses 8 bytes).
 *
 * @param contents the file's bytes
 * @returns the password bytes
 * @throws TypeError for an empty password
 */
export function passwordFromFile(contents: Uint8Array): Uint8Array {
  let end = contents.indexOf(10);
  if (end < 0) end = contents.length;
  if (end > 0 && contents[end - 1] === 13) end--;
  if (end === 0) throw new TypeError("the password file is empty");
  return contents.slice(0, end);
}
