/**
 * The VNC display: RFB server, encoder worker, WebSocket transport, PS/2 keyboard input,
 * pointer input through the virtio tablet.
 *
 * @module
 */
export { startVncDisplay, type VncDisplay, VncStartError } from "./display.ts";
export { parseVncOption, passwordFromFile, type VncOption } from "./options.ts";
export { VncServer, type VncServerOptions } from "./server.ts";
export type { FramebufferSource } from "./encoder.ts";
