/**
 * RFB pointer events into an absolute tablet (virtio-input): the position
 * in framebuffer pixels becomes ABS_X/ABS_Y over 0..32767, so the guest's
 * pointer sits where the viewer's is whatever the mode; button mask bits
 * become BTN_LEFT/MIDDLE/RIGHT presses and releases, and the wheel bits
 * (RFB buttons 4-7, pressed and released per notch) become REL_WHEEL and
 * REL_HWHEEL steps. Each PointerEvent is one report ending in SYN_REPORT.
 * Runs on the main loop; allocates nothing per event.
 *
 * @module
 */
import {
  ABS_X,
  ABS_Y,
  BTN_LEFT,
  BTN_MIDDLE,
  BTN_RIGHT,
  EV_ABS,
  EV_KEY,
  EV_REL,
  REL_HWHEEL,
  REL_WHEEL,
  TABLET_ABS_MAX,
} from "../../devices/virtio/input_config.ts";

/** The tablet as this adapter needs it (VirtioInput). */
export interface TabletPort {
  /** Stages one event of the current report. */
  event(type: number, code: number, value: number): void;
  /** Ends the report; false when it was dropped. */
  sync(): boolean;
}

/** RFB mask bit to button code, for bits 0-2. */
const BUTTONS = [BTN_LEFT, BTN_MIDDLE, BTN_RIGHT];
/** RFB mask bits 3-6: wheel up, down, left, right. */
const WHEEL_UP = 1 << 3, WHEEL_DOWN = 1 << 4, WHEEL_LEFT = 1 << 5, WHEEL_RIGHT = 1 << 6;

/**
 * Scales a pixel coordinate onto the tablet's axis: pixel 0 is 0 and the
 * last pixel is {@link TABLET_ABS_MAX} (what a guest maps back onto the
 * same screen).
 *
 * @param pos the pixel (clamped to the screen)
 * @param size screen pixels along the axis
 * @returns the axis value
 * @example
 * ```ts
 * import { scaleAxis } from "./pointer_input.ts";
 * console.log(scaleAxis(1023, 1024), scaleAxis(0, 1024)); // 32767 0
 * ```
 */
export function scaleAxis(pos: number, size: number): number {
  if (size <= 1) return 0;
  const p = Math.min(Math.max(pos, 0), size - 1);
  return Math.floor((p * TABLET_ABS_MAX) / (size - 1));
}

/**
 * Feeds RFB PointerEvents to whichever tablet the machine has now (a reset
 * builds a new one).
 *
 * @example
 * ```ts ignore
 * const ptr = new TabletPointerInput(() => virtioInputById(id), geometry);
 * ptr.pointer(1, 512, 384); // left button down at the middle of 1024x768
 * ```
 */
export class TabletPointerInput {
  readonly #target: () => TabletPort | undefined;
  readonly #geometry: Int32Array;
  #buttons = 0;
  /** Reports the tablet dropped (no buffers, or no tablet). */
  dropped = 0;

  /**
   * Builds the adapter.
   *
   * @param target the current tablet, if any
   * @param geometry the framebuffer's shared words [generation, width, height, stride]
   */
  constructor(target: () => TabletPort | undefined, geometry: Int32Array) {
    this.#target = target;
    this.#geometry = geometry;
  }

  /**
   * A PointerEvent.
   *
   * @param buttons RFB button mask
   * @param x pixel column
   * @param y pixel row
   */
  pointer(buttons: number, x: number, y: number): void {
    const t = this.#target();
    const old = this.#buttons;
    this.#buttons = buttons;
    if (!t) {
      this.dropped++;
      return;
    }
    t.event(EV_ABS, ABS_X, scaleAxis(x, Atomics.load(this.#geometry, 1)));
    t.event(EV_ABS, ABS_Y, scaleAxis(y, Atomics.load(this.#geometry, 2)));
    for (let i = 0; i < BUTTONS.length; i++) {
      const bit = 1 << i;
      if ((old ^ buttons) & bit) t.event(EV_KEY, BUTTONS[i], buttons & bit ? 1 : 0);
    }
    // A notch is a press of a wheel "button": count the press edge only.
    const pressed = buttons & ~old;
    if (pressed & WHEEL_UP) t.event(EV_REL, REL_WHEEL, 1);
    if (pressed & WHEEL_DOWN) t.event(EV_REL, REL_WHEEL, -1);
    if (pressed & WHEEL_LEFT) t.event(EV_REL, REL_HWHEEL, -1);
    if (pressed & WHEEL_RIGHT) t.event(EV_REL, REL_HWHEEL, 1);
    if (!t.sync()) this.dropped++;
  }
}
