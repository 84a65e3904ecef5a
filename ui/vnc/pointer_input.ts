/**
 * RFB pointer events into the guest: an absolute tablet (virtio-input) when
 * the machine has one, else the PS/2 mouse on the i8042's AUX port.
 *
 * Tablet: the position in framebuffer pixels becomes ABS_X/ABS_Y over
 * 0..32767, so the guest's pointer sits where the viewer's is whatever the
 * mode; button mask bits become BTN_LEFT/MIDDLE/RIGHT presses and releases,
 * and the wheel bits (RFB buttons 4-7, pressed and released per notch)
 * become REL_WHEEL and REL_HWHEEL steps. Each PointerEvent is one report
 * ending in SYN_REPORT.
 *
 * PS/2 mouse (QEMU's default without a tablet, ui/vnc.c): relative motion,
 * the difference from the previous event's position (the first event only
 * sets it), buttons, and vertical wheel notches (the fourth byte once the
 * guest has made it an IntelliMouse). The guest's own pointer acceleration
 * applies, so its pointer need not sit under the viewer's.
 *
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

/** The PS/2 mouse as this adapter needs it (I8042.pushMouse under the big lock). */
export interface MousePort {
  /**
   * Relative motion and the buttons now held.
   *
   * @param dx pixels right
   * @param dy pixels down
   * @param dz wheel notches towards the user
   * @param buttons bit 0 left, 1 right, 2 middle (the PS/2 packet's order)
   */
  move(dx: number, dy: number, dz: number, buttons: number): void;
}

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
 * builds a new one), or to the PS/2 mouse when it has none.
 *
 * @example
 * ```ts ignore
 * const ptr = new PointerInput(() => virtioInputById(id), geometry, { mouse });
 * ptr.pointer(1, 512, 384); // left button down at the middle of 1024x768
 * ```
 */
export class PointerInput {
  readonly #target: () => TabletPort | undefined;
  readonly #geometry: Int32Array;
  readonly #mouse: MousePort | undefined;
  #buttons = 0;
  /** The previous position for relative motion; -1: none yet. */
  #lastX = -1;
  #lastY = 0;
  /** Reports the tablet dropped (no buffers, or no tablet and no mouse). */
  dropped = 0;

  /**
   * Builds the adapter.
   *
   * @param target the current tablet, if any
   * @param geometry the framebuffer's shared words [generation, width, height, stride]
   * @param options the PS/2 mouse, for when there is no tablet
   */
  constructor(
    target: () => TabletPort | undefined,
    geometry: Int32Array,
    options: { mouse?: MousePort } = {},
  ) {
    this.#target = target;
    this.#geometry = geometry;
    this.#mouse = options.mouse;
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
      if (this.#mouse) this.#relative(old, buttons, x, y, this.#mouse);
      else this.dropped++;
      return;
    }
    this.#lastX = -1;
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

  #relative(old: number, buttons: number, x: number, y: number, mouse: MousePort): void {
    let dx = 0, dy = 0;
    if (this.#lastX >= 0) {
      dx = x - this.#lastX;
      dy = y - this.#lastY;
    }
    this.#lastX = x;
    this.#lastY = y;
    const pressed = buttons & ~old;
    const dz = (pressed & WHEEL_DOWN ? 1 : 0) - (pressed & WHEEL_UP ? 1 : 0);
    if (dx === 0 && dy === 0 && dz === 0 && ((old ^ buttons) & 7) === 0) return;
    // RFB: 1 left, 2 middle, 4 right; PS/2: 1 left, 2 right, 4 middle.
    const ps2 = (buttons & 1) | ((buttons & 4) >> 1) | ((buttons & 2) << 1);
    mouse.move(dx, dy, dz, ps2);
  }
}
