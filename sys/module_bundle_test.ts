import assert from "node:assert/strict";
import {
  bundleModules,
  bundleScript,
  moduleBlobUrl,
  moduleDataUrl,
  runBundleScript,
} from "./module_bundle.ts";
import { BundleRefusal, type ModuleShape, readModuleShape } from "./module_shape.ts";
import { BUNDLE_FRAGMENT, importServed } from "./bundle_registry.ts";

let base = 0;

/**
 * Modules given as { "a.js": source }, under a fresh file URL root (the
 * bundles of one isolate share modules by URL, so every test has its own).
 */
function graph(files: Record<string, string>): { root: string; shapes: Map<string, ModuleShape> } {
  const root = `file:///bundle-test-${base++}/`;
  const shapes = new Map<string, ModuleShape>();
  for (const [name, src] of Object.entries(files)) {
    shapes.set(root + name, readModuleShape(root + name, src));
  }
  return { root, shapes };
}

/** Bundles `files` with `entry` first and imports the bundle. */
async function load(
  files: Record<string, string>,
  entry = "main.js",
): Promise<Record<string, unknown>> {
  const { root, shapes } = graph(files);
  return await import(moduleDataUrl(bundleModules(shapes, [root + entry])));
}

function refusal(files: Record<string, string>, entry = "main.js"): string {
  try {
    const { root, shapes } = graph(files);
    bundleModules(shapes, [root + entry]);
  } catch (e) {
    if (e instanceof BundleRefusal) return e.message;
    throw e;
  }
  throw new Error("the bundle was not refused");
}

Deno.test("a live let export: importers see the exporter's later assignments", async () => {
  const m = await load({
    "counter.js": `export let count = 0;
export function inc() { count++; }
export var total = 10;
export function add(n) { total += n; }`,
    "main.js": `import { count, inc, total as sum, add } from "./counter.js";
export { inc, add } from "./counter.js";
export function read() { return count; }
export function both() { const o = { count, sum }; return [o.count, o.sum]; }
export function viaTernary(x) { return x ? count : -1; }
inc();
export const after = count;`,
  });
  assert.equal(m.after, 1);
  assert.equal((m.read as () => number)(), 1);
  (m.inc as () => void)();
  (m.inc as () => void)();
  (m.add as (n: number) => void)(5);
  assert.equal((m.read as () => number)(), 3);
  assert.deepEqual((m.both as () => number[])(), [3, 15]);
  assert.equal((m.viaTernary as (x: boolean) => number)(true), 3);
});

Deno.test("re-exports: export *, export * as, renamed re-exports, defaults", async () => {
  const m = await load({
    "a.js": `export const a = "a"; export function f() { return "f"; } export default "A";`,
    "b.js": `export const b = "b"; export class K { k() { return "k"; } }`,
    "c.js": `export default function named() { return "c"; }`,
    "d.js": `export default class { static d = "d"; }`,
    "e.js": `const x = 1, y = 2; export { x, y as why };`,
    "main.js": `export * from "./a.js";
export * from "./b.js";
export * as nsB from "./b.js";
export { default as cDefault } from "./c.js";
export { why as renamed } from "./e.js";
import D from "./d.js";
import aDefault, * as all from "./a.js";
export const dd = D.d, name = D.name;
export const viaNs = all.a + all.f() + aDefault;
export default 6 * 7;`,
  });
  assert.deepEqual(Object.keys(m).sort(), [
    "K",
    "a",
    "b",
    "cDefault",
    "dd",
    "default",
    "f",
    "name",
    "nsB",
    "renamed",
    "viaNs",
  ]);
  assert.equal(m.a, "a");
  assert.equal(m.b, "b");
  assert.equal(m.default, 42);
  assert.equal((m.cDefault as () => string)(), "c");
  assert.equal(m.renamed, 2);
  assert.equal(m.dd, "d");
  assert.equal(m.viaNs, "afA");
  const ns = m.nsB as Record<string | symbol, unknown>;
  assert.deepEqual(Object.keys(ns), ["K", "b"]);
  assert.equal(ns[Symbol.toStringTag], "Module");
  assert.ok(!Object.isExtensible(ns));
  assert.throws(() => {
    "use strict";
    ns.b = 1;
  }, TypeError);
  assert.equal(new (m.K as new () => { k(): string })().k(), "k");
});

Deno.test("modules run once, dependencies first, in import order; dynamic imports lazily", async () => {
  const log: string[] = [];
  (globalThis as Record<string, unknown>).__bundleTestLog = log;
  const files = {
    "x.js": `globalThis.__bundleTestLog.push("x");`,
    "y.js": `import "./x.js"; globalThis.__bundleTestLog.push("y");`,
    "lazy.js": `globalThis.__bundleTestLog.push("lazy"); export const v = 7;`,
    "main.js": `import "./y.js";
import "./x.js";
globalThis.__bundleTestLog.push("main");
export function later() { return import("./lazy.js"); }`,
  };
  const m = await load(files);
  assert.deepEqual(log, ["x", "y", "main"]);
  const lazy = await (m.later as () => Promise<{ v: number }>)();
  assert.equal(lazy.v, 7);
  assert.deepEqual(log, ["x", "y", "main", "lazy"]);
  delete (globalThis as Record<string, unknown>).__bundleTestLog;
});

Deno.test("two bundles in one isolate share a module; importServed finds it without a load", async () => {
  (globalThis as Record<string, unknown>).__bundleTestRuns = 0;
  const { root, shapes } = graph({
    "shared.js": `globalThis.__bundleTestRuns++; export const token = {};`,
    "one.js": `import { token } from "./shared.js"; export const t1 = token;`,
    "two.js": `import { token } from "./shared.js"; export const t2 = token;`,
  });
  const one = await import(moduleDataUrl(bundleModules(shapes, [root + "one.js"])));
  const twoUrl = moduleBlobUrl(bundleModules(shapes, [root + "two.js"]), root + "two.js");
  assert.ok(twoUrl.startsWith("blob:"));
  assert.ok(twoUrl.endsWith(BUNDLE_FRAGMENT + encodeURIComponent(root + "two.js")));
  const two = await import(twoUrl);
  assert.equal(one.t1, two.t2);
  assert.equal((globalThis as Record<string, unknown>).__bundleTestRuns, 1);
  // A bundle URL whose module already ran resolves to that module's exports.
  const again = await importServed(twoUrl);
  assert.equal(again.t2, two.t2);
  delete (globalThis as Record<string, unknown>).__bundleTestRuns;
});

Deno.test("import and export look-alikes in strings, templates, regexps and comments are left alone", async () => {
  const m = await load({
    "dep.js": `export const n = 2;`,
    "main.js": `import { n } from "./dep.js";
const s = "import x from './missing.js'; export { y }";
const t = \`\${n} export default \${"import('./missing.js')"}\`;
const r = /export \\{ a \\}|import\\(/;
// import { z } from "./missing.js";
/* export const w = 1; */
const half = n / 2 / 1;
export const out = [s.length > 0, t, r.test("import("), half];`,
  });
  assert.deepEqual(m.out, [true, "2 export default import('./missing.js')", true, 1]);
});

Deno.test("shapes the bundler cannot prove are refused, never bundled wrongly", () => {
  assert.match(
    refusal({
      "dep.js": `export let v = 1;`,
      "main.js": `import { v } from "./dep.js"; export function f(v) { return v; }`,
    }),
    /declared again in an inner scope/,
  );
  assert.match(
    refusal({ "main.js": `const o = { a: 1 }; export const { a } = o;` }),
    /destructuring in an export declaration/,
  );
  assert.match(refusal({ "main.js": `export const u = import.meta.url;` }), /import\.meta/);
  assert.match(refusal({ "main.js": `await 0; export const x = 1;` }), /does not compile/);
  assert.match(
    refusal({
      "a.js": `import "./b.js"; export const a = 1;`,
      "b.js": `import "./a.js"; export const b = 1;`,
    }, "a.js"),
    /import cycle/,
  );
  assert.match(
    refusal({ "dep.js": `export const a = 1;`, "main.js": `import { b } from "./dep.js";` }),
    /not found/,
  );
  assert.match(
    refusal({ "main.js": `import j from "./x.json" with { type: "json" };`, "x.json": "" }),
    /import attributes/,
  );
  assert.match(
    refusal({ "dep.js": `export let v = 1;`, "main.js": `export { v } from "./dep.js";` }),
    /may change/,
  );
  assert.match(refusal({ "main.js": `const __b$m0 = 1;` }), /reserved name/);
});

Deno.test("modules the runtime loads itself stay real imports", async () => {
  const m = await load({
    "main.js": `import { posix } from "node:path"; export const joined = posix.join("a", "b");`,
  });
  assert.equal(m.joined, "a/b");
});

Deno.test("moduleDataUrl encodes only what a URL cannot carry, and round-trips", async () => {
  const src = 'export const s = "50% #1 \\t é ∑ ?x=1";\n';
  const url = moduleDataUrl(src);
  assert.ok(!/[#\n\t]/.test(url.slice(5)), url);
  assert.ok(url.includes("export const s"), "plain text stays plain");
  assert.equal((await import(url)).s, "50% #1 \t é ∑ ?x=1");
});

Deno.test("a bundle run as a script: provided modules shared, node: modules loaded on first use", async () => {
  const { root, shapes } = graph({
    "state.js": `export let n = 0;
export function inc() { n++; }`,
    "lazy.js": `import { createHash } from "node:crypto";
export const digest = createHash("sha1").update("a").digest("hex");`,
    "main.js": `import { inc, n } from "./state.js";
inc();
export const seen = n;
export function now() { return n; }
export const lazy = () => import("./lazy.js");`,
  });
  const script = bundleScript(shapes, [root + "main.js"], {
    provided: new Set([root + "state.js"]),
  });
  assert.deepEqual(script.provided, [root + "state.js"]);
  assert.deepEqual(script.externals, ["node:crypto"]);
  assert.deepEqual([...script.exportNames].sort(), ["lazy", "now", "seen"]);
  assert.ok(!script.body.includes("export let n"), "the provided module is not in the bundle");
  // The "running" instance of state.js, as the isolate would have it.
  let n = 5;
  const state = {
    get n() {
      return n;
    },
    inc: () => void n++,
  };
  assert.throws(
    () => runBundleScript(script, new Map(), "t"),
    /state\.js: its namespace was not given/,
  );
  const ns = runBundleScript(script, new Map([[root + "state.js", state]]), "t");
  assert.equal(ns.seen, 6);
  state.inc();
  assert.equal((ns.now as () => number)(), 7, "the import is live");
  const lazy = await (ns.lazy as () => Promise<{ digest: string }>)();
  assert.equal(lazy.digest, "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8");
  // The module form of the same script exports the same names.
  const m = await import(moduleDataUrl(bundleModules(shapes, [root + "lazy.js"])));
  assert.equal(m.digest, lazy.digest);
});
