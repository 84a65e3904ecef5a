import assert from "node:assert/strict";
import { assemble, type Bits } from "./asm.ts";
import { hasObjdump, objdump } from "./_objdump.ts";

// Each row: our source line | what objdump -M intel prints for it (spaces collapsed). Rows are
// assembled together at 0x1000 after a `top:` label, followed by a `data:` label at 0x1800.
const TABLES: Record<Bits, string[]> = {
  16: [
    "mov ax, bx | mov ax,bx",
    "mov al, [si] | mov al,BYTE PTR [si]",
    "mov eax, [si+4] | mov eax,DWORD PTR [si+0x4]",
    "mov [bx+di-2], cx | mov WORD PTR [bx+di-0x2],cx",
    "mov word [bp], 0x1234 | mov WORD PTR [bp+0x0],0x1234",
    "mov byte [0x500], 7 | mov BYTE PTR ds:0x500,0x7",
    "mov si, data | mov si,0x1800",
    "mov eax, 0x12345678 | mov eax,0x12345678",
    "mov bh, 3 | mov bh,0x3",
    "mov ds, ax | mov ds,ax",
    "mov ax, ss | mov ax,ss",
    "mov eax, cr0 | mov eax,cr0",
    "mov cr0, eax | mov cr0,eax",
    "mov cr4, eax | mov cr4,eax",
    "mov eax, [ebx+ecx*4+8] | mov eax,DWORD PTR [ebx+ecx*4+0x8]",
    "mov [esp], eax | mov DWORD PTR [esp],eax",
    "add ax, 5 | add ax,0x5",
    "add eax, 0x10000 | add eax,0x10000",
    "or eax, 1 | or eax,0x1",
    "and byte [bx+si], 0x7f | and BYTE PTR [bx+si],0x7f",
    "sub cx, [bx+0x200] | sub cx,WORD PTR [bx+0x200]",
    "cmp word [di+data], 0 | cmp WORD PTR [di+0x1800],0x0",
    "cmp al, 10 | cmp al,0xa",
    "test al, al | test al,al",
    "test ax, 0x8000 | test ax,0x8000",
    "inc dword [data] | inc DWORD PTR ds:0x1800",
    "dec ecx | dec ecx",
    "not ax | not ax",
    "neg byte [bx] | neg BYTE PTR [bx]",
    "shl bx, 2 | shl bx,0x2",
    "rol ax, cl | rol ax,cl",
    "out dx, al | out dx,al",
    "out dx, eax | out dx,eax",
    "out 0xf4, al | out 0xf4,al",
    "in al, dx | in al,dx",
    "in ax, 0x60 | in ax,0x60",
    "push ax | push ax",
    "push eax | push eax",
    "pop bx | pop bx",
    "push 5 | push 0x5",
    "push 0x1234 | push 0x1234",
    "call top | call 0x1000",
    "ret | ret",
    "iret | iret",
    "rdtsc | rdtsc",
    "lgdt [data] | lgdtw ds:0x1800",
    "lidt [bx] | lidtw [bx]",
    "jmp dword 0x08:0x12345 | jmp 0x8:0x12345",
    "jmp 0x18:top | jmp 0x18:0x1000",
    "lock xadd [bx], ax | lock xadd WORD PTR [bx],ax",
    "lock inc dword [data] | lock inc DWORD PTR ds:0x1800",
    "xchg [data], ax | xchg WORD PTR ds:0x1800,ax",
    "lea bx, [bx+si+3] | lea bx,[bx+si+0x3]",
    "rep stosd | rep stos DWORD PTR es:[di],eax",
    "stosb | stos BYTE PTR es:[di],al",
    "rep movsb | rep movs BYTE PTR es:[di],BYTE PTR ds:[si]",
    "movsd | movs DWORD PTR es:[di],DWORD PTR ds:[si]",
    "cli | cli",
    "hlt | hlt",
    "pause | pause",
    "rdmsr | rdmsr",
    "wrmsr | wrmsr",
    "int 0x13 | int 0x13",
    "jz top | je 0x1000",
    "jmp top | jmp 0x1000",
    "jnc data | jae 0x1800",
    "jmp data | jmp 0x1800",
  ],
  32: [
    "mov ax, 0x10 | mov ax,0x10",
    "mov ss, ax | mov ss,eax",
    "and esp, 0xffff | and esp,0xffff",
    "mov dword [edi], 0x9003 | mov DWORD PTR [edi],0x9003",
    "mov dword [0x8000], 0x9003 | mov DWORD PTR ds:0x8000,0x9003",
    "mov [edi+4], eax | mov DWORD PTR [edi+0x4],eax",
    "mov eax, [ebp] | mov eax,DWORD PTR [ebp+0x0]",
    "mov eax, [ebp+ecx*2] | mov eax,DWORD PTR [ebp+ecx*2+0x0]",
    "mov eax, [ecx*8+0x100] | mov eax,DWORD PTR [ecx*8+0x100]",
    "mov ecx, 0xc0000080 | mov ecx,0xc0000080",
    "or eax, 0x80000000 | or eax,0x80000000",
    "add eax, 0x200000 | add eax,0x200000",
    "loop top | loop 0x1000",
    "jmp 0x18:top | jmp 0x18:0x1000",
    "lgdt [data] | lgdtd ds:0x1800",
    "lock xadd [ebx], eax | lock xadd DWORD PTR [ebx],eax",
    "mov ax, [bx] | mov ax,WORD PTR [bx]",
    "xchg [esi], eax | xchg DWORD PTR [esi],eax",
    "push ax | push ax",
    "pop ebp | pop ebp",
    "mov cr3, eax | mov cr3,eax",
    "rep stosd | rep stos DWORD PTR es:[edi],eax",
    "call data | call 0x1800",
    "jnz top | jne 0x1000",
    "jg data | jg 0x1800",
  ],
  64: [
    "mov rax, 0xcafef00d | movabs rax,0xcafef00d",
    "mov rax, -1 | mov rax,0xffffffffffffffff",
    "mov rax, 0x7fffffff | mov rax,0x7fffffff",
    "mov rax, 0x123456789 | movabs rax,0x123456789",
    "mov rsi, data | movabs rsi,0x1800",
    "mov esi, data | mov esi,0x1800",
    "mov r9d, 5 | mov r9d,0x5",
    "mov r8b, 1 | mov r8b,0x1",
    "mov sil, 2 | mov sil,0x2",
    "shl r9, 32 | shl r9,0x20",
    "or rax, r9 | or rax,r9",
    "rol r8, 4 | rol r8,0x4",
    "mov eax, r8d | mov eax,r8d",
    "mov esp, esp | mov esp,esp",
    "mov [rbx], eax | mov DWORD PTR [rbx],eax",
    "mov ecx, [rbx+4] | mov ecx,DWORD PTR [rbx+0x4]",
    "cmp ecx, 0xedcba987 | cmp ecx,0xedcba987",
    "mov al, [r12] | mov al,BYTE PTR [r12]",
    "mov al, [r13] | mov al,BYTE PTR [r13+0x0]",
    "mov rax, [r13+r12*8+0x1000] | mov rax,QWORD PTR [r13+r12*8+0x1000]",
    "mov al, [data] | mov al,BYTE PTR ds:0x1800",
    "mov al, [rbx+data] | mov al,BYTE PTR [rbx+0x1800]",
    "inc rsi | inc rsi",
    "dec r15 | dec r15",
    "lock xadd [rdi], rax | lock xadd QWORD PTR [rdi],rax",
    "lock inc qword [rdi+8] | lock inc QWORD PTR [rdi+0x8]",
    "push rbx | push rbx",
    "push r12 | push r12",
    "pop r15 | pop r15",
    "push 0x12345 | push 0x12345",
    "sub rsp, 0x1000 | sub rsp,0x1000",
    "mov cr3, rax | mov cr3,rax",
    "mov rax, cr4 | mov rax,cr4",
    "mov cr8, rax | mov cr8,rax",
    "mov qword [rbx], -2 | mov QWORD PTR [rbx],0xfffffffffffffffe",
    "rep stosq | rep stos QWORD PTR es:[rdi],rax",
    "in eax, dx | in eax,dx",
    "lgdt [data] | lgdt ds:0x1800",
    "test rax, 0x100 | test rax,0x100",
    "call top | call 0x1000",
    "jae top | jae 0x1000",
    "jmp data | jmp 0x1800",
  ],
};

for (const bits of [16, 32, 64] as const) {
  Deno.test({
    name: `assembler matches objdump for ${bits}-bit encodings`,
    ignore: !hasObjdump(),
    fn() {
      const rows = TABLES[bits].map((r) => r.split(" | "));
      const source = ["top:", ...rows.map(([src]) => src), "resb 0x1800 - ($ - top)", "data:"];
      // resb needs a constant, so pad with align instead.
      source.splice(-2, 1, "align 0x800");
      const out = assemble(source.join("\n"), { origin: 0x1000, bits });
      assert.equal(out.labels.data, 0x1800);
      assert.equal(out.instructions.length, rows.length);
      const end = out.instructions.at(-1)!;
      const decoded = objdump(out.code, 0x1000, { bits, stop: end.address + end.size });
      assert.equal(decoded.length, rows.length);
      rows.forEach(([src, expected], i) => {
        assert.equal(decoded[i].text, expected, `'${src}'`);
        assert.equal(decoded[i].address, out.instructions[i].address, `'${src}'`);
        assert.equal(decoded[i].size, out.instructions[i].size, `'${src}'`);
      });
    },
  });
}

function hex(src: string, bits: Bits = 16): string {
  const out = assemble(src, { bits });
  return [...out.code].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

Deno.test("encodings of mode-switch and locked instructions", () => {
  assert.equal(hex("mov eax, cr0"), "0f 20 c0");
  assert.equal(hex("or eax, 1"), "66 83 c8 01");
  assert.equal(hex("jmp dword 0x08:0x1234"), "66 ea 34 12 00 00 08 00");
  assert.equal(hex("jmp 0x18:0x1234", 32), "ea 34 12 00 00 18 00");
  assert.equal(hex("lock xadd [bx], ax"), "f0 0f c1 07");
  assert.equal(hex("lock inc dword [0x2000]"), "f0 66 ff 06 00 20");
  assert.equal(hex("mov rax, [r13+r12*8+0x1000]", 64), "4b 8b 84 e5 00 10 00 00");
  assert.equal(hex("mov al, [0x2000]", 64), "8a 04 25 00 20 00 00");
  assert.equal(hex("mov rbx, 0xd0000000", 64), "48 bb 00 00 00 d0 00 00 00 00");
  assert.equal(hex("mov rax, -1", 64), "48 c7 c0 ff ff ff ff");
  assert.equal(hex("push r12", 64), "41 54");
  assert.equal(hex("pause"), "f3 90");
  assert.equal(hex("wrmsr"), "0f 30");
});

Deno.test("jumps relax from rel8 to rel16/rel32 only when needed", () => {
  const src = (gap: number) =>
    `start:\njmp fwd\njz fwd\nresb ${gap}\nfwd:\njmp start\njnz start\nloop fwd`;
  const near = assemble(src(100), { bits: 32 });
  assert.deepEqual(near.instructions.map((i) => i.size), [2, 2, 2, 2, 2]);
  const far = assemble(src(200), { bits: 32 });
  assert.deepEqual(far.instructions.map((i) => i.size), [5, 6, 5, 6, 2]);
  assert.equal(far.labels.fwd, 11 + 200);
  const far16 = assemble(src(200), { bits: 16 });
  assert.deepEqual(far16.instructions.map((i) => i.size), [3, 4, 3, 4, 2]);
  assert.throws(
    () => assemble("start:\nresb 130\nloop start", { bits: 32 }),
    /loop target is out of rel8 range/,
  );
});

Deno.test("labels, locals, data directives and expressions", () => {
  const out = assemble(
    [
      "outer:",
      ".x: db 1, 2, 'A', \"hi\"",
      "other:",
      ".x: dw .x - outer, 0xffff",
      "align 8",
      "q: dq 0x00af9a000000ffff, q",
      "dd (1 << 4) | 3, -1",
      "mov al, 'a' - 10 ; comment; with 'quote'",
    ].join("\n"),
    { origin: 0x100 },
  );
  assert.equal(out.labels["outer.x"], 0x100);
  assert.equal(out.labels["other.x"], 0x105);
  assert.equal(out.labels.q, 0x110);
  assert.deepEqual(
    [...out.code],
    [
      1,
      2,
      0x41,
      0x68,
      0x69, // db
      5,
      0,
      0xff,
      0xff,
      0,
      0,
      0,
      0,
      0,
      0,
      0, // dw + align
      0xff,
      0xff,
      0,
      0,
      0,
      0x9a,
      0xaf,
      0,
      0x10,
      1,
      0,
      0,
      0,
      0,
      0,
      0, // dq
      0x13,
      0,
      0,
      0,
      0xff,
      0xff,
      0xff,
      0xff, // dd
      0xb0,
      0x57, // mov al, 'a' - 10
    ],
  );
});

Deno.test("unsupported or invalid forms fail with the line", () => {
  const bad: [string, Bits, RegExp][] = [
    ["mov [bx], 5", 16, /Operand size is ambiguous.*line 1/],
    ["mov ax, ebx", 16, /Operand sizes do not match/],
    ["mov rax, 1", 32, /64-bit operands need bits 64/],
    ["mov r8d, 1", 32, /need bits 64/],
    ["mov ah, r8b", 64, /cannot be used with a REX prefix/],
    ["mov eax, [bx+cx]", 16, /Invalid 16-bit address/],
    ["mov eax, [esp*2]", 32, /cannot be an index/],
    ["mov cr0, ax", 16, /Control registers move to\/from a 32-bit GPR/],
    ["mov al, [0xd0000000]", 64, /does not fit in 32 bits/],
    ["jmp 0x08:0x1000", 64, /far jmp is invalid in 64-bit mode/],
    ["jmp nowhere", 16, /Undefined label 'nowhere'/],
    ["lock mov [bx], ax", 16, /lock needs a read-modify-write/],
    ["lock add ax, bx", 16, /memory destination/],
    ["rep lodsb", 16, /rep is only supported with stos and movs/],
    ["imul eax, ebx", 32, /Unsupported instruction 'imul'/],
    ["out dx, bl", 16, /Unsupported operand form for out/],
    ["mov cs, ax", 16, /cs cannot be loaded/],
    ["mov al, 0x1ff", 16, /does not fit in 8 bits/],
    ["a:\na:", 16, /defined twice/],
    ["eax: nop", 16, /reserved/],
    ["bits 8", 16, /bits must be 16, 32 or 64/],
    ["x:\nresb x", 16, /must be a constant/],
    ["mov ax, [es:bx]", 16, /Segment overrides are not supported/],
    ["add rax, 0x80000000", 64, /sign-extended 32-bit/],
    ["mov si, far_label\nresb 0x10000\nfar_label:", 16, /does not fit in 16 bits/],
  ];
  for (const [src, bits, re] of bad) {
    assert.throws(() => assemble(src, { bits }), re, src);
  }
});
