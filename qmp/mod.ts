/**
 * The QMP control socket: server, commands, the target interface, framing.
 *
 * @module
 */
export * from "./server.ts";
export * from "./commands.ts";
export * from "./target.ts";
export * from "./json_stream.ts";
