import assert from "node:assert/strict";
import { kvmRoute } from "./route.ts";

function env(vars: Record<string, string>) {
  return { get: (k: string) => vars[k] };
}

async function fakeRoot(paths: string[], kvm: boolean): Promise<string> {
  const root = await Deno.makeTempDir();
  for (const p of paths) await Deno.mkdir(`${root}${p}`, { recursive: true });
  await Deno.mkdir(`${root}/dev`);
  if (kvm) await Deno.writeFile(`${root}/dev/kvm`, new Uint8Array(0));
  return root;
}

Deno.test("kvmRoute honours the DENOVMM_KVM_ROUTE override", async () => {
  const root = await fakeRoot(["/sys/module/kvm_pvm"], true);
  try {
    assert.equal(kvmRoute({ env: env({ DENOVMM_KVM_ROUTE: "direct" }), root }), "direct");
    assert.equal(kvmRoute({ env: env({ DENOVMM_KVM_ROUTE: "nested" }), root }), "nested");
    assert.equal(kvmRoute({ env: env({ DENOVMM_KVM_ROUTE: "" }), root }), "nested");
    assert.throws(() => kvmRoute({ env: env({ DENOVMM_KVM_ROUTE: "pvm" }), root }), TypeError);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("kvmRoute is direct only for kvm_intel/kvm_amd with an openable /dev/kvm", async () => {
  const cases: [string[], boolean, string][] = [
    [["/sys/module/kvm_amd"], true, "direct"],
    [["/sys/module/kvm_intel"], true, "direct"],
    [["/sys/module/kvm_amd"], false, "nested"],
    [["/sys/module/kvm_pvm"], true, "nested"],
    [["/sys/module/kvm_pvm", "/sys/module/kvm_intel"], true, "nested"],
    [["/sys/module/kvm"], true, "nested"],
    [[], false, "nested"],
  ];
  for (const [paths, kvm, want] of cases) {
    const root = await fakeRoot(paths, kvm);
    try {
      assert.equal(kvmRoute({ env: env({}), root }), want, `${paths.join(",")} kvm=${kvm}`);
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  }
});

Deno.test("kvmRoute on this machine agrees with its /sys/module", () => {
  const route = kvmRoute({ env: env({}) });
  let hardware = false;
  for (const m of ["kvm_intel", "kvm_amd"]) {
    try {
      Deno.statSync(`/sys/module/${m}`);
      hardware = true;
    } catch {
      // absent
    }
  }
  if (!hardware) assert.equal(route, "nested");
});
