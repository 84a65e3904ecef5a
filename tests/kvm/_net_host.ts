/**
 * The host side of the virtio-net KVM test and benchmark: tun and
 * vhost-net loaded from the running Debian kernel's module tree (the
 * nested host has neither built in), a persistent tap with the host's
 * address, and TCP peers for the guest to talk to.
 *
 * @module
 */
import { debianKernel } from "../fixtures/debian.ts";
import { resolveModules } from "../fixtures/modules.ts";
import { openTap } from "../../sys/tun.ts";

/** The test tap. */
export const TAP = "dvmnet0";
/** The host's address on it (the guest is 10.0.2.15). */
export const HOST_IP = "10.0.2.2";

async function sh(cmd: string[]): Promise<void> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1) }).output();
  if (!out.success) {
    throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Loads tun (and vhost-net when asked) from the running kernel's module tree if missing. */
export async function ensureHostModules(): Promise<void> {
  const k = await debianKernel("amd64");
  const release = Deno.osRelease();
  if (!k.modulesDir.includes(release)) return; // Not the Debian kernel: use what it has.
  const loaded = await Deno.readTextFile("/proc/modules").catch(() => "");
  for (const m of await resolveModules(k.modulesDir, ["tun", "vhost_net"])) {
    if (new RegExp(`^${m.name} `, "m").test(loaded)) continue;
    await new Deno.Command("insmod", { args: [m.path] }).output();
  }
}

/** Deletes the persistent test tap, if any. */
export function removeTap(): void {
  try {
    const tap = openTap(TAP);
    tap.setPersist(false);
    tap.close();
  } catch {
    // Not there.
  }
}

/** A persistent tap with the host side address, up. */
export async function hostTap(): Promise<void> {
  removeTap();
  const tap = openTap(TAP);
  tap.setPersist(true);
  tap.close();
  await sh(["ip", "addr", "add", `${HOST_IP}/24`, "dev", TAP]);
  await sh(["ip", "link", "set", TAP, "up"]);
}

export interface PeerResult {
  received: Promise<Uint8Array>;
  close(): void;
}

/** TCP peers: 5555 collects what the guest sends, 5556 sends `payload`. */
export function peers(payload: Uint8Array): PeerResult {
  const inbound = Deno.listen({ hostname: HOST_IP, port: 5555 });
  const outbound = Deno.listen({ hostname: HOST_IP, port: 5556 });
  const received = (async () => {
    const conn = await inbound.accept();
    const chunks: Uint8Array[] = [];
    for await (const c of conn.readable) chunks.push(c);
    const all = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
    let o = 0;
    for (const c of chunks) {
      all.set(c, o);
      o += c.length;
    }
    return all;
  })();
  (async () => {
    const conn = await outbound.accept();
    const w = conn.writable.getWriter();
    await w.write(payload);
    await w.close();
  })().catch(() => {});
  return {
    received,
    close() {
      inbound.close();
      outbound.close();
    },
  };
}
