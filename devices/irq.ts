/**
 * Interrupt lines as devices see them.
 *
 * @module
 */

/**
 * A level-triggered interrupt input (a GSI on the IOAPIC/PIC). Devices raise
 * and lower it; the backend (KVM_IRQ_LINE, an irqfd, a test fake) delivers it.
 * Callable from any thread.
 *
 * @example
 * ```ts
 * import type { IrqLine } from "./irq.ts";
 * export function pulse(line: IrqLine): void {
 *   line.set(true);
 *   line.set(false);
 * }
 * ```
 */
export interface IrqLine {
  /** Sets the line's level. */
  set(level: boolean): void;
}

/**
 * An IrqLine that records its level, for tests.
 *
 * @example
 * ```ts
 * import { FakeIrqLine } from "./irq.ts";
 * const irq = new FakeIrqLine();
 * irq.set(true);
 * console.log(irq.level, irq.raised);
 * ```
 */
export class FakeIrqLine implements IrqLine {
  /** Current level. */
  level = false;
  /** How many times it went from low to high. */
  raised = 0;
  /** @param level new level */
  set(level: boolean): void {
    if (level && !this.level) this.raised++;
    this.level = level;
  }
}
