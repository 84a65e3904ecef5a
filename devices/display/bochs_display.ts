/**
 * A Bochs/VBE PCI display (QEMU's `bochs-display`, PCI 1234:1111), which
 * the stock Linux `bochs` DRM driver drives: BAR 0 is the video memory (the
 * {@link LinearFramebuffer}'s KVM slot, so drawing costs no exits) and BAR 2
 * holds the VBE "dispi" registers at 0x500 (QEMU hw/display/bochs-display.c
 * and vga.c's vbe_ioport_*). When the guest enables a mode, the mode goes
 * to the framebuffer's shared geometry, and the VNC encoder tells clients
 * the new desktop size. The efifb that screen_info announces covers the
 * same memory, so a guest without the driver keeps its console there.
 *
 * Runs in the vCPU threads under the big lock over shared registers;
 * everything the guest writes is checked before it becomes a mode.
 *
 * @module
 */
import { type PciBarRemapHook, PciDevice } from "../pci/pci_device.ts";
import { type FramebufferMode, modeFits, publishMode } from "./linear_framebuffer.ts";

/** QEMU's vendor id for its VGA devices. */
export const BOCHS_VENDOR_ID = 0x1234;
/** The Bochs VBE display. */
export const BOCHS_DEVICE_ID = 0x1111;
/** BAR of the video memory. */
export const BOCHS_FB_BAR = 0;
/** BAR of the registers. */
export const BOCHS_MMIO_BAR = 2;
/** Size of the register BAR. */
export const BOCHS_MMIO_SIZE = 0x1000;
/** Offset of the dispi registers in the register BAR (one le16 per index). */
export const BOCHS_DISPI_OFFSET = 0x500;

/** Dispi register indices (VBE_DISPI_INDEX_*). */
export const VBE_DISPI_INDEX_ID = 0x0;
/** Horizontal resolution. */
export const VBE_DISPI_INDEX_XRES = 0x1;
/** Vertical resolution. */
export const VBE_DISPI_INDEX_YRES = 0x2;
/** Bits per pixel. */
export const VBE_DISPI_INDEX_BPP = 0x3;
/** VBE_DISPI_ENABLED and friends. */
export const VBE_DISPI_INDEX_ENABLE = 0x4;
/** Bank of banked VGA memory (not emulated). */
export const VBE_DISPI_INDEX_BANK = 0x5;
/** Pixels per scan line. */
export const VBE_DISPI_INDEX_VIRT_WIDTH = 0x6;
/** Scan lines of memory. */
export const VBE_DISPI_INDEX_VIRT_HEIGHT = 0x7;
/** First visible column. */
export const VBE_DISPI_INDEX_X_OFFSET = 0x8;
/** First visible line. */
export const VBE_DISPI_INDEX_Y_OFFSET = 0x9;
/** Video memory in 64 KiB units (read-only). */
export const VBE_DISPI_INDEX_VIDEO_MEMORY_64K = 0xa;
/** The ID the display answers (the newest interface). */
export const VBE_DISPI_ID5 = 0xb0c5;
/** ENABLE bits. */
export const VBE_DISPI_ENABLED = 0x01;
/** Reads of XRES/YRES/BPP return the maxima. */
export const VBE_DISPI_GETCAPS = 0x02;
/** Linear framebuffer on. */
export const VBE_DISPI_LFB_ENABLED = 0x40;
/** Largest resolution and depth served (the VNC display's limits). */
export const BOCHS_MAX_XRES = 4096, BOCHS_MAX_YRES = 4096, BOCHS_MAX_BPP = 32;

const REGS = 16;
/** Flag word (after the registers): whether the unusable-mode line was logged. */
const W_LOGGED = 0;

/** Shared state of a {@link BochsDisplay}, plain data for postMessage. */
export interface BochsDisplayState {
  /** PCI configuration space. */
  pci: SharedArrayBuffer;
  /** Dispi registers and flags. */
  regs: SharedArrayBuffer;
}

/** Options for {@link BochsDisplay}. */
export interface BochsDisplayOptions {
  /** The framebuffer's shared geometry words (where a mode goes). */
  geometry: SharedArrayBuffer;
  /** Bytes of video memory behind BAR 0 (a power of two). */
  vramSize: number;
  /** Shared state from another thread's instance (default: reset values). */
  state?: BochsDisplayState;
  /** Told when the guest moves a BAR. */
  onBarRemap?: PciBarRemapHook;
  /** Where the one line about an unusable mode goes (default stderr). */
  log?: (line: string) => void;
}

/**
 * The Bochs display's register side.
 *
 * @example
 * ```ts
 * import { BochsDisplay } from "./bochs_display.ts";
 * const geometry = new SharedArrayBuffer(20);
 * const vga = new BochsDisplay({ geometry, vramSize: 16 << 20 });
 * const put = (i: number, v: number) => vga.barWrite(2, 0x500 + 2 * i, new Uint8Array([v & 0xff, v >> 8]));
 * put(3, 32), put(1, 800), put(2, 600), put(4, 0x41);
 * console.log(new Int32Array(geometry).slice(1)); // Int32Array(4) [ 800, 600, 3200, 0 ]
 * ```
 */
export class BochsDisplay extends PciDevice {
  readonly #regs: Uint16Array;
  readonly #flags: Int32Array;
  readonly #geometry: Int32Array;
  readonly #vramSize: number;
  readonly #log: (line: string) => void;

  /**
   * Builds this thread's instance.
   *
   * @param options geometry, video memory size, shared state
   */
  constructor(options: BochsDisplayOptions) {
    super({
      vendorId: BOCHS_VENDOR_ID,
      deviceId: BOCHS_DEVICE_ID,
      classCode: 0x038000, // display, other (QEMU's bochs-display)
      revision: 0,
      subsystemVendorId: 0x1af4,
      subsystemId: 0x1100,
    }, { state: options.state?.pci, onBarRemap: options.onBarRemap });
    const size = options.vramSize;
    if (!Number.isInteger(Math.log2(size)) || size < 0x10000) {
      throw new RangeError(`Invalid video memory size ${size}`);
    }
    this.#vramSize = size;
    this.#geometry = new Int32Array(options.geometry);
    this.#log = options.log ?? ((l) => console.error(l));
    const regs = options.state?.regs ?? new SharedArrayBuffer(REGS * 2 + 8);
    this.#regs = new Uint16Array(regs, 0, REGS);
    this.#flags = new Int32Array(regs, REGS * 2, 2);
    this.addBar(BOCHS_FB_BAR, { size, kind: "mem32", prefetchable: true });
    this.addBar(BOCHS_MMIO_BAR, { size: BOCHS_MMIO_SIZE, kind: "mem32" });
    if (!options.state) {
      this.#regs[VBE_DISPI_INDEX_ID] = VBE_DISPI_ID5;
      this.#regs[VBE_DISPI_INDEX_VIDEO_MEMORY_64K] = Math.min(size / 0x10000, 0xffff);
    }
  }

  /** Shared state, for rebuilding this device in another Worker. */
  get sharedState(): BochsDisplayState {
    return { pci: super.state(), regs: this.#regs.buffer as SharedArrayBuffer };
  }

  /**
   * Reads a dispi register as the guest sees it.
   *
   * @param index VBE_DISPI_INDEX_*
   * @returns its value
   */
  dispi(index: number): number {
    const r = this.#regs;
    if (index >= REGS) return 0;
    if (r[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_GETCAPS) {
      if (index === VBE_DISPI_INDEX_XRES) return BOCHS_MAX_XRES;
      if (index === VBE_DISPI_INDEX_YRES) return BOCHS_MAX_YRES;
      if (index === VBE_DISPI_INDEX_BPP) return BOCHS_MAX_BPP;
    }
    return r[index];
  }

  /**
   * A guest read of BAR 2: dispi registers at 0x500 (any width), zeros elsewhere.
   *
   * @param bar the BAR
   * @param offset offset in it
   * @param data where the bytes go
   */
  override barRead(bar: number, offset: number, data: Uint8Array): void {
    data.fill(0);
    if (bar !== BOCHS_MMIO_BAR || offset < BOCHS_DISPI_OFFSET) return;
    for (let i = 0; i < data.length; i++) {
      const at = offset + i - BOCHS_DISPI_OFFSET;
      data[i] = (this.dispi(at >> 1) >> ((at & 1) * 8)) & 0xff;
    }
  }

  /**
   * A guest write of BAR 2: 16-bit dispi register writes at 0x500.
   *
   * @param bar the BAR
   * @param offset offset in it
   * @param data the bytes
   */
  override barWrite(bar: number, offset: number, data: Uint8Array): void {
    // The VGA ports at 0x400 (Linux unblanks through 0x3c0) have nothing to do here.
    if (bar !== BOCHS_MMIO_BAR || offset < BOCHS_DISPI_OFFSET || offset % 2 !== 0) return;
    for (let i = 0; i + 1 < data.length; i += 2) {
      this.#writeDispi((offset + i - BOCHS_DISPI_OFFSET) >> 1, data[i] | (data[i + 1] << 8));
    }
  }

  #writeDispi(index: number, value: number): void {
    const r = this.#regs;
    switch (index) {
      case VBE_DISPI_INDEX_ID:
        if (value >= 0xb0c0 && value <= VBE_DISPI_ID5) r[index] = value;
        return;
      case VBE_DISPI_INDEX_VIDEO_MEMORY_64K:
        return; // read-only
      case VBE_DISPI_INDEX_ENABLE: {
        const was = r[index] & VBE_DISPI_ENABLED;
        r[index] = value;
        if ((value & VBE_DISPI_ENABLED) && !was) {
          // As QEMU: enabling starts the picture at the top of memory.
          r[VBE_DISPI_INDEX_VIRT_WIDTH] = r[VBE_DISPI_INDEX_XRES];
          r[VBE_DISPI_INDEX_VIRT_HEIGHT] = r[VBE_DISPI_INDEX_YRES];
          r[VBE_DISPI_INDEX_X_OFFSET] = 0;
          r[VBE_DISPI_INDEX_Y_OFFSET] = 0;
        }
        break;
      }
      default:
        if (index >= REGS) return;
        r[index] = value;
    }
    if (r[VBE_DISPI_INDEX_ENABLE] & VBE_DISPI_ENABLED) this.#update();
  }

  /** The enabled mode into the shared geometry, if it is one the display can show. */
  #update(): void {
    const r = this.#regs;
    const bpp = r[VBE_DISPI_INDEX_BPP];
    const vw = Math.max(r[VBE_DISPI_INDEX_VIRT_WIDTH], r[VBE_DISPI_INDEX_XRES]);
    const mode: FramebufferMode = {
      width: r[VBE_DISPI_INDEX_XRES],
      height: r[VBE_DISPI_INDEX_YRES],
      stride: vw * 4,
      offset: (r[VBE_DISPI_INDEX_Y_OFFSET] * vw + r[VBE_DISPI_INDEX_X_OFFSET]) * 4,
    };
    if (bpp !== 32 || !modeFits(mode, this.#vramSize)) {
      if (Atomics.exchange(this.#flags, W_LOGGED, 1) === 0) {
        this.#log(
          `bochs-display: mode ${mode.width}x${mode.height}x${bpp} (stride ${mode.stride}, ` +
            `offset ${mode.offset}) cannot be shown; the display keeps its last mode`,
        );
      }
      return;
    }
    const g = this.#geometry;
    if (
      Atomics.load(g, 1) === mode.width && Atomics.load(g, 2) === mode.height &&
      Atomics.load(g, 3) === mode.stride && Atomics.load(g, 4) === mode.offset
    ) return;
    publishMode(g, mode);
  }
}
