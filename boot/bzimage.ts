/**
 * bzImage loading per the Linux x86 boot protocol
 * (Documentation/arch/x86/boot.rst), for the 64-bit entry: the loader places
 * the protected-mode kernel, the initrd, the command line and the zero page
 * in guest RAM and returns where it put them. It never touches vCPUs.
 *
 * @module
 */
import type { GuestMemory } from "../memory/guest_memory.ts";
import {
  BOOT_E820_ENTRY,
  BOOT_E820_ENTRY_SIZE,
  BOOT_FLAG_MAGIC,
  BOOT_PARAMS,
  BOOT_PARAMS_SIZE,
  E820_MAX_ENTRIES_ZEROPAGE,
  E820_RAM,
  getField,
  HDRS_MAGIC,
  LOADED_HIGH,
  setField,
  SETUP_HEADER,
  SETUP_HEADER_OFFSET,
  SETUP_HEADER_SIZE,
  XLF_CAN_BE_LOADED_ABOVE_4G,
  XLF_KERNEL_64,
} from "./boot_params.ts";
import { buildE820, type E820Entry } from "./e820.ts";
import { placeInitrd } from "./initrd.ts";
import { KernelLoaderError } from "./kernel_loader_error.ts";
import { encodeCmdline, writeCmdline } from "./cmdline.ts";
import { CMDLINE_START, FOUR_GIB, HIGH_MEMORY_START, ZERO_PAGE_START } from "./layout.ts";
import {
  chooseKaslr,
  KASLR_FLAG,
  type KernelPlacement,
  placePayload,
  relocateKernel,
  type UnpackedKernelBytes,
} from "./unpacked_kernel.ts";
import { relocationTableBytes, writeRelocationStub } from "./relocation_stub.ts";

/** The oldest boot protocol accepted: 2.06 (cmdline_size, relocatable kernels). */
export const MIN_BOOT_PROTOCOL = 0x0206;

/** The setup header fields that matter for loading, decoded. */
export interface BzImageHeader {
  /** Boot protocol version, e.g. 0x020f for 2.15. */
  readonly version: number;
  /** Bytes of real-mode setup code including the boot sector: (setup_sects + 1) * 512. */
  readonly setupSize: number;
  /** Bytes of protected-mode code (the rest of the file). */
  readonly kernelSize: number;
  /** loadflags. */
  readonly loadflags: number;
  /** xloadflags (0 before protocol 2.12). */
  readonly xloadflags: number;
  /** Whether the kernel may be loaded at any kernelAlignment-aligned address. */
  readonly relocatable: boolean;
  /** Required alignment of a relocated kernel. */
  readonly kernelAlignment: number;
  /** Preferred (or, if not relocatable, the run-time) load address. */
  readonly prefAddress: number;
  /** Bytes of contiguous memory the kernel needs from its run-time start. */
  readonly initSize: number;
  /** Highest address the initrd may occupy. */
  readonly initrdAddrMax: number;
  /** Longest command line the kernel accepts, excluding the NUL. */
  readonly cmdlineSize: number;
  /** The kernel version string from the setup code, if present. */
  readonly kernelVersion: string;
  /** Offset of the compressed payload within the protected-mode code (2.08+). */
  readonly payloadOffset: number;
  /** Length of the compressed payload (2.08+). */
  readonly payloadLength: number;
}

/** Options for {@link loadBzImage}. */
export interface BzImageOptions {
  /** The kernel command line. */
  readonly cmdline: string;
  /** The initial ramdisk, if any. */
  readonly initrd?: Uint8Array;
  /** The memory map for the zero page; {@link buildE820} of the memory if left out. */
  readonly e820?: readonly E820Entry[];
  /** The RSDP address to give the kernel in boot_params.acpi_rsdp_addr. */
  readonly rsdp?: number;
  /**
   * The kernel already unpacked (its payload's ELF and relocations): loaded
   * in place of the decompressor, at a KASLR placement unless the command
   * line says `nokaslr`.
   */
  readonly unpacked?: UnpackedKernelBytes;
  /** A uniform random integer below n, for KASLR (default: crypto.getRandomValues). */
  readonly random?: (n: number) => number;
}

/** Where {@link loadBzImage} put things. */
export interface BootResult {
  /** The 64-bit entry point: the protected-mode kernel's load address + 0x200. */
  readonly entry: number;
  /** Where the protected-mode kernel was loaded. */
  readonly kernelAddr: number;
  /** End (exclusive) of the memory the kernel may use before reading the e820 map. */
  readonly kernelEnd: number;
  /** Address of the zero page (struct boot_params): RSI at entry. */
  readonly bootParams: number;
  /** Address of the NUL-terminated command line. */
  readonly cmdlineAddr: number;
  /** Command line bytes including the NUL. */
  readonly cmdlineSize: number;
  /** The initrd's placement, if one was given. */
  readonly initrd?: { readonly addr: number; readonly size: number };
  /** The decoded setup header. */
  readonly header: BzImageHeader;
  /** Where the unpacked kernel runs, when it was given one. */
  readonly unpacked?: KernelPlacement & { readonly kaslr: boolean };
  /**
   * RBX at entry when {@link BootResult.entry} is the relocation stub
   * (boot/relocation_stub.ts): its parameters, which hold the kernel's entry.
   */
  readonly relocationParams?: number;
}

/** A uniform random integer in [0, n) from the system's CSPRNG. */
function cryptoRandom(n: number): number {
  const limit = Math.floor(0x1_0000_0000 / n) * n;
  const w = new Uint32Array(1);
  do crypto.getRandomValues(w); while (w[0] >= limit);
  return w[0] % n;
}

/** `nokaslr` as a word of the command line, as the decompressor looks for it. */
function kaslrOff(cmdline: string): boolean {
  return /(^|\s)nokaslr(\s|$)/.test(cmdline);
}

function hex(n: number): string {
  return `0x${n.toString(16)}`;
}

function protocol(v: number): string {
  return `${v >> 8}.${(v & 0xff).toString().padStart(2, "0")}`;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * Decodes and checks a bzImage's setup header.
 *
 * @param image the whole bzImage file
 * @returns the decoded header
 * @throws {KernelLoaderError} for truncated files, non-kernels, protocols older
 *   than 2.06, zImages and kernels without a 64-bit entry
 * @example
 * ```ts
 * import { parseBzImage } from "./bzimage.ts";
 * try {
 *   parseBzImage(new Uint8Array(100));
 * } catch (e) {
 *   console.log((e as Error).message);
 * }
 * ```
 */
export function parseBzImage(image: Uint8Array): BzImageHeader {
  const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const len = image.length;
  const need = SETUP_HEADER.version.offset + 2;
  if (len < need) {
    throw new KernelLoaderError(`Not a Linux bzImage: file is only ${len} bytes`);
  }
  const get = (fld: { offset: number; size: number }) => getField(v, 0, fld);
  if (get(SETUP_HEADER.header) !== HDRS_MAGIC) {
    throw new KernelLoaderError("Not a Linux bzImage: no HdrS magic in the setup header");
  }
  const bootFlag = get(SETUP_HEADER.boot_flag);
  if (bootFlag !== BOOT_FLAG_MAGIC) {
    throw new KernelLoaderError(`Not a Linux bzImage: boot flag is ${hex(bootFlag)}, not 0xaa55`);
  }
  const version = get(SETUP_HEADER.version);
  if (version < MIN_BOOT_PROTOCOL) {
    throw new KernelLoaderError(
      `Kernel boot protocol ${protocol(version)} is too old: 2.06 or newer is required`,
    );
  }
  // The header's real end, from the jump instruction at 0x200 (boot.rst).
  const headerEnd = Math.min(0x202 + image[0x201], SETUP_HEADER_OFFSET + SETUP_HEADER_SIZE);
  const fieldEnd = version >= 0x020a ? SETUP_HEADER.init_size.offset + 4 : 0x23c;
  if (len < Math.max(headerEnd, fieldEnd)) {
    throw new KernelLoaderError(
      `Kernel image truncated: ${len} bytes end inside the setup header`,
    );
  }
  const sects = get(SETUP_HEADER.setup_sects) || 4;
  const setupSize = (sects + 1) * 512;
  if (len <= setupSize) {
    throw new KernelLoaderError(
      `Kernel image truncated: ${len} bytes, the setup code alone needs ${setupSize}`,
    );
  }
  const kernelSize = len - setupSize;
  const declared = get(SETUP_HEADER.syssize) * 16;
  if (kernelSize < declared) {
    throw new KernelLoaderError(
      `Kernel image truncated: ${kernelSize} bytes of protected-mode code, the header declares ${declared}`,
    );
  }
  const loadflags = get(SETUP_HEADER.loadflags);
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new KernelLoaderError("Not a bzImage: zImage kernels loaded below 1 MiB are unsupported");
  }
  const xloadflags = version >= 0x020c ? get(SETUP_HEADER.xloadflags) : 0;
  // Before 2.12 there is no flag; x86-64 kernels of that age still have the
  // 64-bit entry at +0x200, as other VMMs assume.
  if (version >= 0x020c && (xloadflags & XLF_KERNEL_64) === 0) {
    throw new KernelLoaderError("Kernel has no 64-bit entry point (XLF_KERNEL_64 is clear)");
  }
  const kernelAlignment = get(SETUP_HEADER.kernel_alignment);
  const relocatable = get(SETUP_HEADER.relocatable_kernel) !== 0;
  if (
    relocatable &&
    (kernelAlignment < 4096 || kernelAlignment > 0x4000_0000 ||
      (kernelAlignment & (kernelAlignment - 1)) !== 0)
  ) {
    throw new KernelLoaderError(`Kernel alignment ${hex(kernelAlignment)} is not a power of two`);
  }
  const prefAddress = version >= 0x020a ? get(SETUP_HEADER.pref_address) : HIGH_MEMORY_START;
  const initSize = version >= 0x020a ? get(SETUP_HEADER.init_size) : 0;
  const cmdlineSize = get(SETUP_HEADER.cmdline_size);
  const payloadOffset = version >= 0x0208 ? get(SETUP_HEADER.payload_offset) : 0;
  const payloadLength = version >= 0x0208 ? get(SETUP_HEADER.payload_length) : 0;
  if (payloadOffset + payloadLength > kernelSize) {
    throw new KernelLoaderError(
      `Kernel image truncated: the payload ends at ${
        payloadOffset + payloadLength
      } of ${kernelSize} bytes`,
    );
  }
  return {
    version,
    setupSize,
    kernelSize,
    loadflags,
    xloadflags,
    relocatable,
    kernelAlignment,
    prefAddress,
    initSize: Math.max(initSize, kernelSize),
    initrdAddrMax: get(SETUP_HEADER.initrd_addr_max),
    cmdlineSize,
    kernelVersion: versionString(image, get(SETUP_HEADER.kernel_version), setupSize),
    payloadOffset,
    payloadLength,
  };
}

/** The NUL-terminated version string kernel_version points at (offset - 0x200 in the file). */
function versionString(image: Uint8Array, ptr: number, setupSize: number): string {
  if (ptr === 0) return "";
  const start = ptr + 0x200;
  if (start >= setupSize) return "";
  let end = start;
  while (end < setupSize && end - start < 256 && image[end] !== 0) end++;
  return new TextDecoder().decode(image.subarray(start, end));
}

/**
 * The lowest page-aligned range of `len` bytes of RAM from 1 MiB to 4 GiB
 * (what the boot page tables map) that overlaps none of `avoid`, or
 * undefined when there is none.
 */
function freeRam(
  map: readonly E820Entry[],
  len: number,
  avoid: readonly { start: number; end: number }[],
): number | undefined {
  const sorted = [...avoid].sort((a, b) => a.start - b.start);
  for (const e of map) {
    if (e.type !== E820_RAM) continue;
    const end = Math.min(e.addr + e.size, FOUR_GIB);
    let at = alignUp(Math.max(e.addr, HIGH_MEMORY_START), 0x1000);
    for (const x of sorted) {
      if (at < x.end && x.start < at + len) at = alignUp(x.end, 0x1000);
    }
    if (at + len <= end) return at;
  }
  return undefined;
}

/** Whether [start, start+len) lies in one usable e820 RAM entry. */
function fitsRam(map: readonly E820Entry[], start: number, len: number): boolean {
  for (const e of map) {
    if (e.type === E820_RAM && e.addr <= start && start + len <= e.addr + e.size) return true;
  }
  return false;
}

/**
 * Loads a bzImage for the 64-bit boot protocol: the protected-mode kernel at
 * pref_address (or the first kernel_alignment-aligned address above 1 MiB
 * that fits, for relocatable kernels), the initrd at the highest page-aligned
 * address below min(initrd_addr_max, 4 GiB) above the kernel, the command
 * line at {@link CMDLINE_START} and the zero page at {@link ZERO_PAGE_START}.
 * Everything is checked before anything is written.
 *
 * @param mem guest RAM
 * @param image the bzImage file
 * @param options command line, initrd, e820 map, RSDP address
 * @returns where everything went, entry point included
 * @throws {KernelLoaderError} for a bad image, a kernel or initrd too big for
 *   RAM, or a command line too long
 * @example
 * ```ts ignore
 * import { GuestMemory } from "../memory/guest_memory.ts";
 * import { loadBzImage } from "./bzimage.ts";
 * const mem = GuestMemory.allocate(256 << 20);
 * const image = Deno.readFileSync("vmlinuz");
 * const boot = loadBzImage(mem, image, { cmdline: "console=ttyS0" });
 * console.log(boot.entry.toString(16));
 * ```
 */
export function loadBzImage(
  mem: GuestMemory,
  image: Uint8Array,
  options: BzImageOptions,
): BootResult {
  const header = parseBzImage(image);
  const map = options.e820 ?? buildE820(mem);
  if (map.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new KernelLoaderError(`Too many e820 entries: ${map.length}`);
  }

  const cmdline = encodeCmdline(options.cmdline, header.cmdlineSize);

  // Kernel placement.
  const { kernelSize, initSize } = header;
  let kernelAddr = -1;
  let kernelEnd = 0;
  if (header.relocatable) {
    const align = header.kernelAlignment;
    const candidates = [alignUp(header.prefAddress, align), alignUp(HIGH_MEMORY_START, align)];
    for (const c of candidates) {
      if (c >= HIGH_MEMORY_START && fitsRam(map, c, initSize)) {
        kernelAddr = c;
        kernelEnd = c + initSize;
        break;
      }
    }
  } else {
    // A fixed kernel is loaded at 1 MiB and moves itself to pref_address.
    const runStart = header.prefAddress;
    if (
      runStart >= HIGH_MEMORY_START && fitsRam(map, HIGH_MEMORY_START, kernelSize) &&
      fitsRam(map, runStart, initSize)
    ) {
      kernelAddr = HIGH_MEMORY_START;
      kernelEnd = Math.max(HIGH_MEMORY_START + kernelSize, runStart + initSize);
    }
  }
  if (kernelAddr < 0) {
    throw new KernelLoaderError(
      `Kernel too big for guest RAM: it needs ${hex(initSize)} bytes from ${
        hex(header.prefAddress)
      } and RAM has ${hex(mem.size)} bytes`,
    );
  }

  // An unpacked kernel runs at its linked base's alignment anywhere in RAM below 4 GiB.
  const unpacked = options.unpacked !== undefined && header.relocatable &&
      options.unpacked.layout.linkedBase === header.prefAddress
    ? options.unpacked
    : undefined;

  // Initrd placement.
  let initrd: { addr: number; size: number } | undefined;
  if (options.initrd && options.initrd.length > 0) {
    const size = options.initrd.length;
    const addr = placeInitrd(map, size, {
      minAddr: kernelEnd,
      maxEnd: header.initrdAddrMax + 1,
      above4G: (header.xloadflags & XLF_CAN_BE_LOADED_ABOVE_4G) !== 0,
    });
    initrd = { addr, size };
  }

  // Everything fits: write it.
  let entry = kernelAddr + 0x200;
  let placed: (KernelPlacement & { kaslr: boolean }) | undefined;
  let relocationParams: number | undefined;
  if (unpacked) {
    const k = unpacked.layout;
    const kaslr = !kaslrOff(options.cmdline);
    const at = kaslr
      ? chooseKaslr(k, {
        ram: map.filter((e) => e.type === E820_RAM).map((e) => ({
          start: e.addr,
          end: e.addr + e.size,
        })),
        avoid: initrd ? [{ start: initrd.addr, end: initrd.addr + initrd.size }] : [],
        size: initSize,
        virtualSize: Math.max(k.memSize, unpacked.unpackedSize),
        align: header.kernelAlignment,
      }, options.random ?? cryptoRandom)
      : { base: kernelAddr, virtualOffset: 0 };
    if (!mem.contains(at.base, k.memSize)) {
      throw new KernelLoaderError(`Kernel load range ${hex(at.base)} is not guest RAM`);
    }
    for (const seg of k.segments) {
      const dest = at.base + (seg.paddr - k.linkedBase);
      placePayload(mem, unpacked, dest, seg.offset, seg.fileSize);
      if (seg.memSize > seg.fileSize) mem.zero(dest + seg.fileSize, seg.memSize - seg.fileSize);
    }
    entry = at.base + (k.entry - k.linkedBase);
    if (at.virtualOffset !== 0) {
      // Applied in the guest before the kernel's entry when its lists fit
      // in free RAM (the decompressor's way), else here.
      const kernelRange = { start: at.base, end: at.base + Math.max(initSize, k.memSize) };
      const taken = initrd
        ? [kernelRange, { start: initrd.addr, end: initrd.addr + initrd.size }]
        : [kernelRange];
      const table = freeRam(map, relocationTableBytes(unpacked.relocations), taken);
      if (table === undefined) {
        relocateKernel(mem.slice(at.base, k.memSize), k, unpacked.relocations, at.virtualOffset);
      } else {
        const stub = writeRelocationStub(mem, {
          entry,
          base: at.base,
          memSize: k.memSize,
          linkedBase: k.linkedBase,
          virtualOffset: at.virtualOffset,
          relocations: unpacked.relocations,
          table,
        });
        entry = stub.rip;
        relocationParams = stub.rbx;
      }
    }
    kernelAddr = at.base;
    kernelEnd = Math.max(kernelEnd, at.base + initSize);
    placed = { ...at, kaslr };
  } else {
    const kernel = image.subarray(header.setupSize);
    if (!mem.contains(kernelAddr, kernel.length)) {
      throw new KernelLoaderError(`Kernel load range ${hex(kernelAddr)} is not guest RAM`);
    }
    mem.write(kernelAddr, kernel);
  }
  if (initrd) mem.write(initrd.addr, options.initrd!);
  writeCmdline(mem, cmdline);

  const zp = mem.slice(ZERO_PAGE_START, BOOT_PARAMS_SIZE);
  zp.fill(0);
  const hdrEnd = Math.min(0x202 + image[0x201], SETUP_HEADER_OFFSET + SETUP_HEADER_SIZE);
  zp.set(image.subarray(SETUP_HEADER_OFFSET, hdrEnd), SETUP_HEADER_OFFSET);
  const v = new DataView(zp.buffer, zp.byteOffset, zp.byteLength);
  setField(v, 0, SETUP_HEADER.type_of_loader, 0xff);
  setField(v, 0, SETUP_HEADER.code32_start, kernelAddr % FOUR_GIB);
  setField(v, 0, SETUP_HEADER.cmd_line_ptr, CMDLINE_START % FOUR_GIB);
  setField(v, 0, BOOT_PARAMS.ext_cmd_line_ptr, Math.floor(CMDLINE_START / FOUR_GIB));
  if (initrd) {
    setField(v, 0, SETUP_HEADER.ramdisk_image, initrd.addr % FOUR_GIB);
    setField(v, 0, SETUP_HEADER.ramdisk_size, initrd.size % FOUR_GIB);
    setField(v, 0, BOOT_PARAMS.ext_ramdisk_image, Math.floor(initrd.addr / FOUR_GIB));
    setField(v, 0, BOOT_PARAMS.ext_ramdisk_size, Math.floor(initrd.size / FOUR_GIB));
  }
  if (options.rsdp !== undefined) setField(v, 0, BOOT_PARAMS.acpi_rsdp_addr, options.rsdp);
  // The decompressor tells the kernel it randomized (it then randomizes its memory regions too).
  if (placed?.kaslr) {
    setField(v, 0, SETUP_HEADER.loadflags, getField(v, 0, SETUP_HEADER.loadflags) | KASLR_FLAG);
  }
  writeE820(v, map);

  return {
    entry,
    unpacked: placed,
    kernelAddr,
    kernelEnd,
    bootParams: ZERO_PAGE_START,
    cmdlineAddr: CMDLINE_START,
    cmdlineSize: cmdline.length,
    initrd,
    header,
    relocationParams,
  };
}

/**
 * Writes e820 entries into a zero page.
 *
 * @param zeroPage a view of struct boot_params
 * @param map the entries (at most 128)
 * @example
 * ```ts
 * import { writeE820 } from "./bzimage.ts";
 * const zp = new DataView(new ArrayBuffer(4096));
 * writeE820(zp, [{ addr: 0, size: 0x9fc00, type: 1 }]);
 * ```
 */
export function writeE820(zeroPage: DataView, map: readonly E820Entry[]): void {
  if (map.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new RangeError(`Too many e820 entries: ${map.length}`);
  }
  setField(zeroPage, 0, BOOT_PARAMS.e820_entries, map.length);
  map.forEach((e, i) => {
    const base = BOOT_PARAMS.e820_table.offset + i * BOOT_E820_ENTRY_SIZE;
    setField(zeroPage, base, BOOT_E820_ENTRY.addr, e.addr);
    setField(zeroPage, base, BOOT_E820_ENTRY.size, e.size);
    setField(zeroPage, base, BOOT_E820_ENTRY.type, e.type);
  });
}
