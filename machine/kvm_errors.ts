/**
 * Turns a failure to open /dev/kvm into one line that says what to do.
 *
 * @module
 */
import { EACCES, ENODEV, ENOENT, ENXIO, EPERM, ErrnoError } from "../sys/errno.ts";

/**
 * Describes a Kvm.open() failure for a user.
 *
 * @param e what Kvm.open threw
 * @param path the KVM device path
 * @returns one line, or undefined if e is not about opening KVM
 */
export function describeKvmOpenError(e: unknown, path = "/dev/kvm"): string | undefined {
  if (!(e instanceof ErrnoError) || !e.call.startsWith("open ")) return undefined;
  if (e.errno === ENOENT || e.errno === ENXIO || e.errno === ENODEV) {
    return `${path} does not exist: KVM is not available here (enable VT-x/AMD-V in the firmware and load kvm_intel or kvm_amd; inside a VM, enable nested virtualization; \`npm run demo\` falls back to a nested KVM host)`;
  }
  if (e.errno === EACCES || e.errno === EPERM) {
    return `no permission to open ${path}: add your user to the kvm group (sudo usermod -aG kvm $USER, then log in again) or run as root`;
  }
  return `cannot open ${path}: ${e.code}`;
}
