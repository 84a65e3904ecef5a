// An empty Worker for bench/memory_bench.ts: the cost of an isolate alone.
(globalThis as unknown as { postMessage(m: unknown): void }).postMessage("up");
