/**
 * The VMM's process exit codes. Even numbers only, so none collides with an
 * isa-debug-exit code, which is always odd ((value << 1) | 1).
 *
 * @module
 */

/** The guest powered off (ACPI S5, or KVM system event). */
export const EXIT_CODE_POWEROFF = 0;
/** Bad input from the user (flags, files, no KVM). */
export const EXIT_CODE_USAGE = 1;
/** The guest crashed the vCPU (triple fault, entry failure, KVM internal error) or the VMM failed. */
export const EXIT_CODE_CRASH = 2;
/** The VMM was stopped from the terminal (Ctrl-A x) or through the API; SIGHUP/SIGINT/SIGTERM give 128 + signo (sys/signals.ts). */
export const EXIT_CODE_STOPPED = 4;
/** The guest rebooted and `--reboot` was not given. */
export const EXIT_CODE_REBOOT = 10;
