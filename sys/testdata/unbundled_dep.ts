// For worker_url_test.ts: an export the bundler does not read (destructuring).
const pair = { a: 1, b: 2 };
export const { a, b } = pair;
