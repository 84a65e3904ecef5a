/**
 * The POSIX AIO example from aio(7), on denovmm's aio layer:
 * `deno run --allow-ffi examples/aio_read.ts FILE` submits one 1024-byte
 * read, prints `reading...` while it is in progress, then the result.
 *
 * Unlike the C program, the wait is `await aioSuspend(...)`, not a busy
 * loop: completions are delivered by the event loop of this same thread.
 *
 * @module
 */
import { EINPROGRESS, strerror } from "../sys/errno.ts";
import { closeFd, O_RDONLY, openFile } from "../sys/fd.ts";
import { ErrnoError } from "../sys/errno.ts";
import { Aiocb, aioError, aioRead, aioReturn, aioSuspend } from "../aio/posix_aio.ts";

async function main(args: string[]): Promise<number> {
  if (args.length !== 1) {
    console.error("usage: aio_read.ts FILE");
    return 2;
  }
  let fd: number;
  try {
    fd = openFile(args[0], O_RDONLY);
  } catch (e) {
    if (e instanceof ErrnoError) {
      console.error(`open: ${strerror(e.errno)}`);
      return 1;
    }
    throw e;
  }
  const buf = new Uint8Array(1024);
  const cb = new Aiocb({ fd, buf, nbytes: buf.length, offset: 0 });
  try {
    aioRead(cb);
  } catch (e) {
    console.error(`aio_read: ${e instanceof ErrnoError ? strerror(e.errno) : e}`);
    closeFd(fd);
    return 1;
  }
  while (aioError(cb) === EINPROGRESS) {
    console.log("reading...");
    await aioSuspend([cb]);
  }
  const err = aioError(cb);
  const n = aioReturn(cb);
  closeFd(fd);
  if (n < 0) {
    console.error(`aio_read: ${strerror(err)}`);
    return 1;
  }
  console.log(`read ${n} bytes: ${new TextDecoder().decode(buf.subarray(0, n))}`);
  return 0;
}

if (import.meta.main) Deno.exitCode = await main(Deno.args);
