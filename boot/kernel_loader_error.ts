/**
 * The loaders' one error type.
 *
 * @module
 */

/**
 * A kernel, initrd or command line that cannot be loaded: truncated or
 * foreign files, unsupported boot protocols, images too big for guest RAM.
 * The message names the problem in one line; callers may catch this class to
 * report a user error rather than a VMM fault.
 *
 * @example
 * ```ts
 * import { KernelLoaderError } from "./kernel_loader_error.ts";
 * try {
 *   throw new KernelLoaderError("Not a Linux bzImage: no HdrS magic");
 * } catch (e) {
 *   if (e instanceof KernelLoaderError) console.log(e.message);
 * }
 * ```
 */
export class KernelLoaderError extends Error {
  /** @param message what is wrong with the input */
  constructor(message: string) {
    super(message);
    this.name = "KernelLoaderError";
  }
}
