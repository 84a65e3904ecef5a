// For worker_url_test.ts: state the test's own module and a bundle it
// imports must share (one module instance per isolate).
export let count = 0;
export function bump(): void {
  count++;
}
