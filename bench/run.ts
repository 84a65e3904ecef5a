/**
 * `npm run bench` / `deno task bench`: runs every bench/*_bench.ts in turn,
 * each printing its own table with ratios against a baseline measured in the
 * same run. Pass names to run a subset: `deno task bench pio_exit aio`.
 *
 * @module
 */
const dir = new URL(".", import.meta.url).pathname;
const wanted = Deno.args;
const benches = [...Deno.readDirSync(dir)]
  .map((e) => e.name)
  .filter((n) => n.endsWith("_bench.ts"))
  .filter((n) => wanted.length === 0 || wanted.some((w) => n.startsWith(w)))
  .sort();
let failed = 0;
for (const b of benches) {
  console.log(`\n## ${b.replace(/_bench\.ts$/, "")}\n`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${dir}${b}`],
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (code !== 0) {
    console.log(`(${b} failed with exit code ${code})`);
    failed++;
  }
}
Deno.exit(failed === 0 ? 0 : 1);
