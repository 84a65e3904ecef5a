/**
 * `-pidfile FILE`, as QEMU does it: create or reuse the file, hold an
 * exclusive lock on it for the life of the process (a second VMM naming the
 * same file fails instead of overwriting it), write the process id, remove
 * it at exit.
 *
 * @module
 */
import { libc } from "../sys/libc.ts";
import { errno, ErrnoError } from "../sys/errno.ts";
import { closeFd, cstring, O_CREAT, O_RDWR, openFile, writeAll } from "../sys/fd.ts";

const LOCK_EX = 2;
const LOCK_NB = 4;
const EWOULDBLOCK = 11;

/** A pid file that cannot be taken (one line). */
export class PidfileError extends Error {
  /** @param message what went wrong */
  constructor(message: string) {
    super(message);
    this.name = "PidfileError";
  }
}

/**
 * A locked pid file.
 *
 * @example
 * ```ts
 * import { Pidfile } from "./pidfile.ts";
 * const path = Deno.makeTempDirSync() + "/vm.pid";
 * const p = Pidfile.create(path);
 * p.remove();
 * ```
 */
export class Pidfile {
  readonly #path: string;
  #fd: number;

  private constructor(path: string, fd: number) {
    this.#path = path;
    this.#fd = fd;
  }

  /**
   * Creates (or takes over an unlocked) pid file and writes this process's id.
   *
   * @param path the file
   * @returns the held file
   * @throws PidfileError when another process holds it or it cannot be written
   */
  static create(path: string): Pidfile {
    let fd: number;
    try {
      fd = openFile(path, O_RDWR | O_CREAT, 0o600);
    } catch (e) {
      throw new PidfileError(`cannot create pid file '${path}': ${(e as ErrnoError).code}`);
    }
    if (libc.flock(fd, LOCK_EX | LOCK_NB) < 0) {
      const e = errno();
      closeFd(fd);
      throw new PidfileError(
        e === EWOULDBLOCK
          ? `pid file '${path}' is locked by another process`
          : `cannot lock pid file '${path}': ${new ErrnoError("flock", e).code}`,
      );
    }
    try {
      libc.ftruncate(fd, 0n);
      writeAll(fd, new TextEncoder().encode(`${Deno.pid}\n`));
    } catch (e) {
      closeFd(fd);
      throw new PidfileError(`cannot write pid file '${path}': ${(e as Error).message}`);
    }
    return new Pidfile(path, fd);
  }

  /** Removes the file and releases the lock (idempotent). */
  remove(): void {
    if (this.#fd < 0) return;
    libc.unlink(cstring(this.#path));
    closeFd(this.#fd);
    this.#fd = -1;
  }
}
