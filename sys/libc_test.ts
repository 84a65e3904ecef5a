import assert from "node:assert/strict";
import { libc, LIBC_VIA_SYSCALL, libcBoundSymbols, libcSymbolNames } from "./libc.ts";
import { errno } from "./errno.ts";

Deno.test("every libc symbol of the table resolves and binds to a function", () => {
  // Binding is lazy, so a misspelt name would otherwise fail only at its first use.
  for (const name of libcSymbolNames()) {
    assert.equal(typeof (libc as unknown as Record<string, unknown>)[name], "function", name);
  }
  assert.deepEqual(libcBoundSymbols().sort(), libcSymbolNames().sort());
  assert.equal(libc.getpid(), Deno.pid);
});

Deno.test("a fresh isolate binds only the hot-path aliases until a symbol is used", async () => {
  const src = `import { libc, libcBoundSymbols } from ${
    JSON.stringify(import.meta.resolve("./libc.ts"))
  };
    const before = libcBoundSymbols();
    const pid = libc.getpid();
    postMessage({ before, after: libcBoundSymbols(), pid });`;
  const w = new Worker(`data:text/javascript,${encodeURIComponent(src)}`, { type: "module" });
  try {
    const got = await new Promise<{ before: string[]; after: string[]; pid: number }>(
      (resolve, reject) => {
        w.onmessage = (e) => resolve(e.data);
        w.onerror = (e) => reject(new Error(e.message));
      },
    );
    assert.deepEqual(got.before.sort(), [
      "memcpy",
      "read_i32",
      "readv_i32",
      "write_i32",
      "writev_i32",
    ]);
    // getpid is served through syscall(): binding that is the only cost.
    assert.deepEqual(got.after.sort(), [...got.before, "getpid", "syscall_i32"].sort());
    assert.equal(got.pid, Deno.pid);
  } finally {
    w.terminate();
  }
});

Deno.test("the calls served through syscall() have <sys/syscall.h>'s numbers", async () => {
  const kernelName: Record<string, string> = {
    open: "openat",
    pread: "pread64",
    fstatat: "newfstatat",
    eventfd: "eventfd2",
  };
  const names = Object.keys(LIBC_VIA_SYSCALL);
  const src = [
    "#include <stdio.h>",
    "#include <sys/syscall.h>",
    "int main(void) {",
    ...names.map((n) => `  printf("%s %ld\\n", "${n}", (long)SYS_${kernelName[n] ?? n});`),
    "  return 0;",
    "}",
  ].join("\n");
  const dir = await Deno.makeTempDir({ prefix: "denovmm-syscall-" });
  try {
    await Deno.writeTextFile(`${dir}/p.c`, src);
    const cc = await new Deno.Command("cc", { args: ["-o", `${dir}/p`, `${dir}/p.c`] }).output();
    assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
    const out = new TextDecoder().decode((await new Deno.Command(`${dir}/p`).output()).stdout);
    const got = Object.fromEntries(
      out.trim().split("\n").map((l) => {
        const [n, nr] = l.split(" ");
        return [n, Number(nr)];
      }),
    );
    assert.deepEqual(got, { ...LIBC_VIA_SYSCALL });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("calls served through syscall() return and fail as glibc's wrappers do", () => {
  // glibc's own functions, bound here, as the reference.
  const ref = Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
    fstat: { parameters: ["i32", "buffer"], result: "i32" },
    sched_getaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
    umask: { parameters: ["u32"], result: "u32" },
    close: { parameters: ["i32"], result: "i32" },
  }).symbols;
  const ENOENT = 2, EBADF = 9, EEXIST = 17;
  const c = (s: string) => new TextEncoder().encode(s + "\0");
  const dir = Deno.makeTempDirSync({ prefix: "denovmm-via-syscall-" });
  const path = `${dir}/f`;
  Deno.writeTextFileSync(path, "0123456789");
  try {
    // open/openat, fstat, pread64, lseek, close.
    const fd = libc.open(c(path), 0o2000002, /* O_RDWR | O_CLOEXEC */ 0);
    assert.ok(fd >= 0);
    const mine = new BigUint64Array(18), theirs = new BigUint64Array(18);
    const rfd = ref.open(c(path), 0o2000000, 0);
    assert.equal(libc.fstat(fd, mine), 0);
    assert.equal(ref.fstat(rfd, theirs), 0);
    assert.deepEqual(mine.subarray(0, 9), theirs.subarray(0, 9), "dev, ino, nlink, mode, size...");
    assert.equal(ref.close(rfd), 0);
    const buf = new Uint8Array(4);
    assert.equal(libc.pread(fd, buf, 4n, 3n), 4n);
    assert.equal(new TextDecoder().decode(buf), "3456");
    // Into a view at an offset of a shared buffer, as the kernel loader reads into guest RAM.
    const ram = new Uint8Array(new SharedArrayBuffer(64));
    assert.equal(libc.pread(fd, ram.subarray(10, 13), 3n, 7n), 3n);
    assert.deepEqual([...ram.subarray(9, 14)], [0, 0x37, 0x38, 0x39, 0]);
    assert.equal(libc.lseek(fd, 0n, 2 /* SEEK_END */), 10n);
    // fcntl, dup, dup2.
    assert.equal(libc.fcntl(fd, 3, /* F_GETFL */ 0n) & 3, 2);
    const d = libc.dup(fd);
    assert.ok(d > fd);
    assert.equal(libc.dup2(fd, d), d);
    assert.equal(libc.close(d), 0);
    assert.equal(libc.close(fd), 0);
    // A failure: -1 and errno, as a wrapper leaves them.
    assert.equal(libc.close(fd), -1);
    assert.equal(errno(), EBADF);
    assert.equal(libc.open(c(`${dir}/missing`), 0, 0), -1);
    assert.equal(errno(), ENOENT);
    // Paths: mkdir, rename, unlink, chmod.
    assert.equal(libc.mkdir(c(`${dir}/d`), 0o700), 0);
    assert.equal(libc.mkdir(c(`${dir}/d`), 0o700), -1);
    assert.equal(errno(), EEXIST);
    assert.equal(libc.rename(c(path), c(`${dir}/g`)), 0);
    assert.equal(libc.chmod(c(`${dir}/g`), 0o600), 0);
    assert.equal(Deno.statSync(`${dir}/g`).mode! & 0o777, 0o600);
    assert.equal(libc.unlink(c(`${dir}/g`)), 0);
    // Memory: mmap's pointer object, mprotect, madvise, munmap.
    const p = libc.mmap(null, 8192n, 3, 0x22, /* MAP_PRIVATE | MAP_ANONYMOUS */ -1, 0n);
    assert.ok(p !== null && Deno.UnsafePointer.value(p) > 0n);
    new Deno.UnsafePointerView(p!).getUint8(0);
    const page = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p!, 8192));
    page[5000] = 7;
    assert.equal(libc.madvise(p, 8192n, 4 /* MADV_DONTNEED */), 0);
    assert.equal(page[5000], 0);
    assert.equal(libc.mprotect(p, 4096n, 1 /* PROT_READ */), 0);
    assert.equal(libc.munmap(p, 8192n), 0);
    const failed = libc.mmap(null, 4096n, 3, 0x1, /* MAP_SHARED, no fd */ -1, 0n);
    assert.equal(Deno.UnsafePointer.value(failed), 2n ** 64n - 1n, "MAP_FAILED");
    // pipe2, eventfd2.
    const fds = new Int32Array(2);
    assert.equal(libc.pipe2(fds, 0o2000000), 0);
    assert.ok(fds[0] >= 0 && fds[1] > fds[0]);
    const efd = libc.eventfd(0, 0o2000000);
    assert.ok(efd >= 0);
    for (const f of [fds[0], fds[1], efd]) assert.equal(libc.close(f), 0);
    // sched_getaffinity returns 0, not the kernel mask's size; the mask is glibc's.
    const m1 = new Uint8Array(128), m2 = new Uint8Array(128);
    assert.equal(libc.sched_getaffinity(0, 128n, m1), 0);
    assert.equal(ref.sched_getaffinity(0, 128n, m2), 0);
    assert.deepEqual(m1, m2);
    // umask returns the previous mask; getpid.
    const old = ref.umask(0o022);
    assert.equal(libc.umask(0o077), 0o022);
    assert.equal(ref.umask(old), 0o077);
    assert.equal(libc.getpid(), Deno.pid);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
