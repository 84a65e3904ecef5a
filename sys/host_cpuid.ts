/**
 * The host CPU's own CPUID: the instruction run on this thread, not KVM's
 * table of what it can offer a guest. For what KVM leaves out, such as the
 * processor brand string (QEMU's `-cpu host` takes it from the host the same
 * way). Deno cannot run an instruction by itself, so this maps one page with
 * a 28-byte function (written, then made executable and read-only) and calls
 * it through FFI; `--allow-ffi` is the only permission it needs.
 *
 * @module
 */
import { libc } from "./libc.ts";
import {
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  mmap,
  munmap,
  PROT_EXEC,
  PROT_READ,
  PROT_WRITE,
} from "./fd.ts";

const PAGE = 4096;

/**
 * `void cpuid(u32 leaf, u32 subleaf, u32 out[4])` for x86-64 System V:
 * leaf in edi, subleaf in esi, out in rdx; rbx is callee-saved.
 */
// deno-fmt-ignore
const CODE = new Uint8Array([
  0x53,                   // push rbx
  0x49, 0x89, 0xd0,       // mov r8, rdx
  0x89, 0xf8,             // mov eax, edi
  0x89, 0xf1,             // mov ecx, esi
  0x0f, 0xa2,             // cpuid
  0x41, 0x89, 0x00,       // mov [r8], eax
  0x41, 0x89, 0x58, 0x04, // mov [r8 + 4], ebx
  0x41, 0x89, 0x48, 0x08, // mov [r8 + 8], ecx
  0x41, 0x89, 0x50, 0x0c, // mov [r8 + 12], edx
  0x5b,                   // pop rbx
  0xc3,                   // ret
]);

/** EAX, EBX, ECX, EDX of one CPUID leaf. */
export interface CpuidRegs {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/**
 * Runs CPUID for each of `leaves` (subleaf 0 unless given as [leaf, subleaf])
 * on the calling thread.
 *
 * @param leaves the leaves to read
 * @returns their registers, in order; null off x86-64 or where no page may
 *   be made executable
 * @example
 * ```ts
 * import { hostCpuid } from "./host_cpuid.ts";
 * const [l0] = hostCpuid([0]) ?? [];
 * console.log(l0 === undefined || l0.eax >= 1); // the maximum basic leaf
 * ```
 */
export function hostCpuid(leaves: readonly (number | [number, number])[]): CpuidRegs[] | null {
  if (Deno.build.arch !== "x86_64") return null;
  let addr: bigint;
  try {
    addr = mmap(PAGE, { prot: PROT_READ | PROT_WRITE, flags: MAP_PRIVATE | MAP_ANONYMOUS });
  } catch {
    return null;
  }
  const page = Deno.UnsafePointer.create(addr)!;
  try {
    new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(page, PAGE)).set(CODE);
    if (libc.mprotect(page, BigInt(PAGE), PROT_READ | PROT_EXEC) !== 0) return null;
    const def = { parameters: ["u32", "u32", "buffer"], result: "void" } as const;
    const fn = new Deno.UnsafeFnPointer(page as Deno.PointerObject<typeof def>, def);
    const out = new Uint32Array(4);
    return leaves.map((l) => {
      const [leaf, sub] = typeof l === "number" ? [l, 0] : l;
      fn.call(leaf >>> 0, sub >>> 0, out);
      return { eax: out[0], ebx: out[1], ecx: out[2], edx: out[3] };
    });
  } finally {
    munmap(addr, PAGE);
  }
}

/**
 * The host processor's brand string, as its CPUID leaves 0x80000002-4 spell
 * it (48 bytes, up to the first NUL; Linux's /proc/cpuinfo may name the CPU
 * otherwise), or undefined when there is none.
 *
 * @returns the brand string
 * @example
 * ```ts
 * import { hostCpuBrand } from "./host_cpuid.ts";
 * console.log(hostCpuBrand()); // e.g. "AMD EPYC 7B13 64-Core Processor"
 * ```
 */
export function hostCpuBrand(): string | undefined {
  // One mapping for all four; past the maximum leaf CPUID answers
  // something harmless, which is dropped.
  const [max, ...regs] = hostCpuid([0x8000_0000, 0x8000_0002, 0x8000_0003, 0x8000_0004]) ?? [];
  if (!max || max.eax < 0x8000_0004) return undefined;
  const bytes = new Uint8Array(48);
  const v = new DataView(bytes.buffer);
  regs.forEach((r, i) => {
    [r.eax, r.ebx, r.ecx, r.edx].forEach((x, j) => v.setUint32(i * 16 + j * 4, x, true));
  });
  const end = bytes.indexOf(0);
  const brand = new TextDecoder().decode(bytes.subarray(0, end < 0 ? 48 : end));
  return brand.trim() === "" ? undefined : brand;
}
