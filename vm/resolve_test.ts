// A VmConfig is checked before anything is opened or built: each mistake
// is one VmConfigError line, and what was opened before it is released.
import assert from "node:assert/strict";
import { closeResolved, resolveConfig } from "./resolve.ts";
import { VmConfigError } from "./config.ts";
import type { VmConfig } from "./config.ts";

function configError(c: VmConfig, re: RegExp): void {
  assert.throws(() => resolveConfig(c), (e: unknown) => {
    assert.ok(e instanceof VmConfigError, String(e));
    assert.match(e.message, re);
    assert.ok(!e.message.includes("\n"), e.message);
    return true;
  });
}

Deno.test("sizes, counts and missing pieces", () => {
  configError({}, /Nothing to boot/);
  configError({ kernel: new Uint8Array(0), cpus: 0 }, /Invalid vCPU count 0/);
  configError({ kernel: new Uint8Array(0), cpus: 255 }, /Invalid vCPU count 255/);
  configError({ kernel: new Uint8Array(0), memory: "12Q" }, /Invalid memory size '12Q'/);
  configError({ kernel: new Uint8Array(0), memory: 4097 }, /whole number of 4K pages/);
  configError({ kernel: new Uint8Array(0), memory: "8M" }, /at least 16M/);
  configError(
    { flat: { code: new Uint8Array(1), loadAddr: 0, entry: 0 }, initrd: "x" },
    /--initrd needs --kernel/,
  );
});

Deno.test("33 disks is one line about the PCI bus, before any file is opened", () => {
  const disks = Array.from({ length: 33 }, (_, i) => ({ path: `/nonexistent/${i}.img` }));
  configError(
    { kernel: new Uint8Array(0), disks },
    /Too many PCI devices: 33 asked for, bus 0 has room for 31/,
  );
});

Deno.test("kernel files: missing, a directory, not a kernel", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-resolve-" });
  try {
    configError(
      { kernel: `${dir}/nope` },
      /cannot read kernel '.*nope': No such file or directory$/,
    );
    configError({ kernel: dir }, /cannot read kernel '.*': it is a directory$/);
    await Deno.writeTextFile(`${dir}/text`, "not a kernel\n".repeat(100));
    configError({ kernel: `${dir}/text` }, /text: Not a Linux bzImage/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bad disk after a good one releases the good one's lock", async () => {
  const dir = await Deno.makeTempDir({ prefix: "denovmm-resolve-" });
  try {
    await Deno.writeFile(`${dir}/a.img`, new Uint8Array(4096));
    configError(
      {
        flat: { code: new Uint8Array(1), loadAddr: 0, entry: 0 },
        disks: [{ path: `${dir}/a.img` }],
      },
      /--disk needs --kernel/,
    );
    const kernel = `${dir}/k`;
    await Deno.writeFile(kernel, bzImageStub());
    configError(
      { kernel, disks: [{ path: `${dir}/a.img` }, { path: `${dir}/missing.img` }] },
      /missing\.img does not exist/,
    );
    // a.img was released: it opens (and locks) again.
    const rc = resolveConfig({ kernel, disks: [{ path: `${dir}/a.img` }] });
    assert.equal(rc.disks.length, 1);
    assert.equal(rc.disks[0].file.size, 4096);
    closeResolved(rc);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The smallest bzImage header parseBzImage accepts: boot protocol 2.15, 64-bit entry. */
function bzImageStub(): Uint8Array {
  const img = new Uint8Array(0x4000);
  const v = new DataView(img.buffer);
  img[0x1f1] = 1; // setup_sects
  v.setUint16(0x1fe, 0xaa55, true);
  v.setUint32(0x202, 0x53726448, true); // "HdrS"
  v.setUint16(0x206, 0x020f, true); // version 2.15
  img[0x211] = 1; // loadflags: LOADED_HIGH
  v.setUint32(0x230, 0x200000, true); // kernel_alignment
  img[0x234] = 1; // relocatable_kernel
  v.setUint16(0x236, 0x3, true); // xloadflags: XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G
  v.setUint32(0x260, 0x1000000, true); // init_size
  return img;
}
