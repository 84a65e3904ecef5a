/**
 * A small QMP client: `deno task qmp SOCKET COMMAND [JSON-ARGUMENTS]`.
 *
 * Connects, negotiates capabilities, runs one command and prints its
 * `return` value as JSON on stdout (exit 0), or the error's class and
 * description on stderr (exit 1). Events that arrive meanwhile go to stderr.
 * Works with QEMU's sockets as well as denovmm's; needs only `--allow-ffi`.
 *
 * ```sh
 * deno task qmp /run/vm.qmp query-status
 * deno task qmp /run/vm.qmp query-stats '{"target":"vcpu"}'
 * ```
 *
 * @module
 */
import { socketRecv, unixConnect } from "../sys/unix_socket.ts";
import { closeFd, writeAll } from "../sys/fd.ts";
import { ErrnoError } from "../sys/errno.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Reads messages off a blocking socket, one line each. */
class Lines {
  #fd: number;
  #pending = "";
  #buf = new Uint8Array(65536);
  constructor(fd: number) {
    this.#fd = fd;
  }
  next(): Record<string, unknown> {
    for (;;) {
      const nl = this.#pending.indexOf("\n");
      if (nl >= 0) {
        const line = this.#pending.slice(0, nl).trim();
        this.#pending = this.#pending.slice(nl + 1);
        if (line) return JSON.parse(line);
        continue;
      }
      const n = socketRecv(this.#fd, this.#buf);
      if (n === 0) throw new Error("the server closed the connection");
      if (n > 0) this.#pending += dec.decode(this.#buf.subarray(0, n), { stream: true });
    }
  }
}

function usage(): never {
  console.error("usage: deno task qmp SOCKET COMMAND [JSON-ARGUMENTS]");
  Deno.exit(2);
}

/**
 * Runs one command over QMP.
 *
 * @param path socket path
 * @param command the command
 * @param args its arguments
 * @returns the reply (`return` or `error`) and the events seen before it
 */
export function qmpCall(
  path: string,
  command: string,
  args?: Record<string, unknown>,
): { reply: Record<string, unknown>; events: Record<string, unknown>[] } {
  const fd = unixConnect(path);
  try {
    const lines = new Lines(fd);
    const events: Record<string, unknown>[] = [];
    const call = (execute: string, a?: Record<string, unknown>, id?: string) => {
      const msg: Record<string, unknown> = { execute };
      if (a) msg.arguments = a;
      if (id) msg.id = id;
      writeAll(fd, enc.encode(JSON.stringify(msg) + "\n"));
      for (;;) {
        const m = lines.next();
        if ("event" in m) events.push(m);
        else return m;
      }
    };
    const greeting = lines.next();
    if (!("QMP" in greeting)) throw new Error("not a QMP server (no greeting)");
    const caps = call("qmp_capabilities");
    if ("error" in caps) throw new Error(`qmp_capabilities failed: ${JSON.stringify(caps)}`);
    return { reply: call(command, args, "tools/qmp"), events };
  } finally {
    closeFd(fd);
  }
}

if (import.meta.main) {
  const [path, command, json] = Deno.args;
  if (!path || !command || Deno.args.length > 3) usage();
  let args: Record<string, unknown> | undefined;
  if (json !== undefined) {
    try {
      args = JSON.parse(json);
    } catch (e) {
      console.error(`qmp: arguments are not JSON: ${(e as Error).message}`);
      Deno.exit(2);
    }
  }
  try {
    const { reply, events } = qmpCall(path, command, args);
    for (const e of events) console.error(JSON.stringify(e));
    if ("error" in reply) {
      const err = reply.error as { class: string; desc: string };
      console.error(`qmp: ${err.class}: ${err.desc}`);
      Deno.exit(1);
    }
    console.log(JSON.stringify(reply.return, null, 2));
  } catch (e) {
    const msg = e instanceof ErrnoError ? e.message : (e as Error).message;
    console.error(`qmp: ${msg}`);
    Deno.exit(1);
  }
}
