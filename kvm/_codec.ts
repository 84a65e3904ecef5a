// Encoders/decoders between kvm_regs/kvm_sregs bytes and the neutral types.
import type { DescriptorTable, Regs, Segment, Sregs } from "../hypervisor/types.ts";
import { kvm_dtable, kvm_regs, kvm_segment, kvm_sregs } from "./abi.ts";

const REG_NAMES = Object.keys(kvm_regs.fields) as (keyof Regs)[];
const SEG_NAMES = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

/** Decodes struct kvm_regs. */
export function decodeRegs(v: DataView): Regs {
  const r = {} as Regs;
  for (const k of REG_NAMES) r[k] = v.getBigUint64(kvm_regs.fields[k], true);
  return r;
}

/** Encodes struct kvm_regs. */
export function encodeRegs(v: DataView, r: Regs): void {
  for (const k of REG_NAMES) v.setBigUint64(kvm_regs.fields[k], BigInt.asUintN(64, r[k]), true);
}

function decodeSegment(v: DataView, at: number): Segment {
  const f = kvm_segment.fields;
  return {
    base: v.getBigUint64(at + f.base, true),
    limit: v.getUint32(at + f.limit, true),
    selector: v.getUint16(at + f.selector, true),
    type: v.getUint8(at + f.type),
    present: v.getUint8(at + f.present),
    dpl: v.getUint8(at + f.dpl),
    db: v.getUint8(at + f.db),
    s: v.getUint8(at + f.s),
    l: v.getUint8(at + f.l),
    g: v.getUint8(at + f.g),
    avl: v.getUint8(at + f.avl),
    unusable: v.getUint8(at + f.unusable),
  };
}

function encodeSegment(v: DataView, at: number, s: Segment): void {
  const f = kvm_segment.fields;
  v.setBigUint64(at + f.base, s.base, true);
  v.setUint32(at + f.limit, s.limit >>> 0, true);
  v.setUint16(at + f.selector, s.selector, true);
  v.setUint8(at + f.type, s.type);
  v.setUint8(at + f.present, s.present);
  v.setUint8(at + f.dpl, s.dpl);
  v.setUint8(at + f.db, s.db);
  v.setUint8(at + f.s, s.s);
  v.setUint8(at + f.l, s.l);
  v.setUint8(at + f.g, s.g);
  v.setUint8(at + f.avl, s.avl);
  v.setUint8(at + f.unusable, s.unusable);
}

function decodeDtable(v: DataView, at: number): DescriptorTable {
  return {
    base: v.getBigUint64(at + kvm_dtable.fields.base, true),
    limit: v.getUint16(at + kvm_dtable.fields.limit, true),
  };
}

function encodeDtable(v: DataView, at: number, d: DescriptorTable): void {
  v.setBigUint64(at + kvm_dtable.fields.base, d.base, true);
  v.setUint16(at + kvm_dtable.fields.limit, d.limit, true);
}

/** Decodes struct kvm_sregs. */
export function decodeSregs(v: DataView): Sregs {
  const f = kvm_sregs.fields;
  const s = {} as Sregs;
  for (const n of SEG_NAMES) s[n] = decodeSegment(v, f[n]);
  s.gdt = decodeDtable(v, f.gdt);
  s.idt = decodeDtable(v, f.idt);
  s.cr0 = v.getBigUint64(f.cr0, true);
  s.cr2 = v.getBigUint64(f.cr2, true);
  s.cr3 = v.getBigUint64(f.cr3, true);
  s.cr4 = v.getBigUint64(f.cr4, true);
  s.cr8 = v.getBigUint64(f.cr8, true);
  s.efer = v.getBigUint64(f.efer, true);
  s.apicBase = v.getBigUint64(f.apic_base, true);
  return s;
}

/** Encodes struct kvm_sregs (the interrupt bitmap is left as read). */
export function encodeSregs(v: DataView, s: Sregs): void {
  const f = kvm_sregs.fields;
  for (const n of SEG_NAMES) encodeSegment(v, f[n], s[n]);
  encodeDtable(v, f.gdt, s.gdt);
  encodeDtable(v, f.idt, s.idt);
  v.setBigUint64(f.cr0, s.cr0, true);
  v.setBigUint64(f.cr2, s.cr2, true);
  v.setBigUint64(f.cr3, s.cr3, true);
  v.setBigUint64(f.cr4, s.cr4, true);
  v.setBigUint64(f.cr8, s.cr8, true);
  v.setBigUint64(f.efer, s.efer, true);
  v.setBigUint64(f.apic_base, s.apicBase, true);
}
