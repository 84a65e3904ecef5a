import assert from "node:assert/strict";
import {
  AT_SYMLINK_NOFOLLOW,
  closeFd,
  eventFd,
  eventFdDrain,
  eventFdRead,
  eventFdWrite,
  fstat,
  O_RDONLY,
  openFile,
  S_IFMT,
  S_IFREG,
  statAt,
} from "./fd.ts";
import { errno } from "./errno.ts";

Deno.test("eventfd counter: write adds, read returns and clears, drain clears without a value", () => {
  const fd = eventFd();
  try {
    assert.equal(eventFdRead(fd), 0n, "a fresh counter reads as clear");
    eventFdWrite(fd);
    eventFdWrite(fd, 41n);
    assert.equal(eventFdRead(fd), 42n);
    assert.equal(eventFdRead(fd), 0n, "read cleared it");
    assert.equal(eventFdDrain(fd), false);
    eventFdWrite(fd, 0x1_0000_0001n); // both 32-bit halves in use
    assert.equal(eventFdDrain(fd), true);
    assert.equal(eventFdDrain(fd), false, "drain cleared it");
  } finally {
    closeFd(fd);
  }
});

Deno.test("statAt and fstat read struct stat as the kernel fills it (Deno.statSync agrees)", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const path = `${dir}/file`;
    Deno.writeFileSync(path, new Uint8Array(5000));
    Deno.utimeSync(path, 1_700_000_000.25, 1_600_000_000.5);
    Deno.symlinkSync(path, `${dir}/link`);
    const want = Deno.statSync(path);
    const st = statAt(path)!;
    assert.equal(st.mode & S_IFMT, S_IFREG);
    assert.equal(st.size, 5000);
    assert.equal(st.ino, want.ino);
    assert.equal(st.dev, want.dev);
    assert.equal(st.mtimeSec, 1_600_000_000);
    assert.equal(st.mtimeNsec, 500_000_000);
    assert.ok(st.ctimeSec >= 1_700_000_000);
    // Followed, the link is the file; not followed, a link of its own.
    assert.equal(statAt(`${dir}/link`)!.ino, want.ino);
    const link = statAt(`${dir}/link`, AT_SYMLINK_NOFOLLOW)!;
    assert.equal(link.mode & S_IFMT, 0o120000);
    assert.notEqual(link.ino, want.ino);
    assert.equal(statAt(`${dir}/missing`), undefined);
    assert.equal(errno(), 2); // ENOENT
    const fd = openFile(path, O_RDONLY);
    try {
      assert.deepEqual(fstat(fd), st);
    } finally {
      closeFd(fd);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
