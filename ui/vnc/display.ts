/**
 * The VNC display of a machine: its framebuffer served over RFB (and
 * WebSocket), key events into the PS/2 keyboard, pointer events into the
 * virtio tablet, or the PS/2 mouse when there is none. What the machine builder
 * (or machine/run.ts) calls with the --vnc option.
 *
 * @module
 */
import type { EventLoop } from "../../mainloop/types.ts";
import { ErrnoError } from "../../sys/errno.ts";
import type { FramebufferSource } from "./encoder.ts";
import { type KeyboardPort, Ps2KeyboardInput } from "./keyboard_input.ts";
import type { VncOption } from "./options.ts";
import { type MousePort, PointerInput, type TabletPort } from "./pointer_input.ts";
import { VncServer } from "./server.ts";

/** A started display. */
export interface VncDisplay {
  /** The server. */
  server: VncServer;
  /** Stops serving and stops the encoder thread. */
  close(): Promise<void>;
}

/** A display that could not start: one line for the user. */
export class VncStartError extends Error {
  /** @param message what failed */
  constructor(message: string) {
    super(message);
    this.name = "VncStartError";
  }
}

/**
 * Starts the VNC server for a machine's framebuffer.
 *
 * @param loop the main loop
 * @param options the parsed --vnc option, the password, the framebuffer, the keyboard
 *   (its controller, or an input the caller shares and keeps) and the tablet, else the
 *   PS/2 mouse (pointer events are dropped with neither)
 * @returns the display
 * @throws VncStartError when an address cannot be bound
 * @example
 * ```ts ignore
 * const display = await startVncDisplay(loop, { vnc: parseVncOption(":0"), framebuffer: fb.source, keyboard });
 * ```
 */
export async function startVncDisplay(
  loop: EventLoop,
  options: {
    vnc: VncOption;
    password?: Uint8Array;
    framebuffer: FramebufferSource;
    keyboard: KeyboardPort | Ps2KeyboardInput;
    tablet?: () => TabletPort | undefined;
    mouse?: MousePort;
    log?: (line: string) => void;
  },
): Promise<VncDisplay> {
  const { vnc } = options;
  // A keyboard input the caller owns (shared with other sources of keys,
  // so their bytes reach the controller in order) stays open on close.
  const shared = options.keyboard instanceof Ps2KeyboardInput;
  const kbd = options.keyboard instanceof Ps2KeyboardInput
    ? options.keyboard
    : new Ps2KeyboardInput(loop, options.keyboard);
  const tablet = options.tablet ?? (() => undefined);
  const ptr = new PointerInput(tablet, new Int32Array(options.framebuffer.geometry), {
    mouse: options.mouse,
  });
  let server: VncServer;
  try {
    server = await VncServer.start(loop, {
      listen: { host: vnc.host, port: vnc.port },
      websocket: vnc.websocketPort === undefined
        ? undefined
        : { host: vnc.host, port: vnc.websocketPort },
      password: options.password,
      framebuffer: options.framebuffer,
      input: {
        key: (down, keysym) => kbd.key(down, keysym),
        pointer: (buttons, x, y) => ptr.pointer(buttons, x, y),
      },
      log: options.log,
    });
  } catch (e) {
    if (!shared) kbd.close();
    if (e instanceof ErrnoError) throw new VncStartError(`cannot serve VNC: ${e.message}`);
    throw e;
  }
  return {
    server,
    async close() {
      if (!shared) kbd.close();
      await server.close();
    },
  };
}
