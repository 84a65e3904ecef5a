/**
 * Guest memory: typed addresses and bounds-checked RAM.
 *
 * @module
 */
export * from "./guest_memory.ts";
