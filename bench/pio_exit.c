/*
 * Baseline for bench/pio_exit_bench.ts: the same flat real-mode guest run by
 * a minimal C VMM, counting port-I/O exits. Usage: pio_exit GUEST.bin ENTRY PORT
 * Prints "<exits> <nanoseconds>" for the exits to PORT, timed from the first
 * KVM_RUN to the debug-exit write (port 0xf4).
 */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
  perror(what);
  exit(2);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s GUEST.bin ENTRY PORT\n", argv[0]);
    return 2;
  }
  unsigned entry = strtoul(argv[2], 0, 0), port = strtoul(argv[3], 0, 0);
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  if (vm < 0) die("KVM_CREATE_VM");
  size_t mem_size = 1 << 20;
  unsigned char *mem = mmap(0, mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) die("mmap");
  FILE *f = fopen(argv[1], "rb");
  if (!f) die("fopen");
  fread(mem + 0x1000, 1, mem_size - 0x1000, f);
  fclose(f);
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = mem_size, .userspace_addr = (unsigned long)mem};
  if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0) die("KVM_SET_USER_MEMORY_REGION");
  int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
  if (vcpu < 0) die("KVM_CREATE_VCPU");
  int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
  struct kvm_run *run = mmap(0, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");
  struct kvm_cpuid2 *cpuid = calloc(1, sizeof(*cpuid) + 256 * sizeof(struct kvm_cpuid_entry2));
  cpuid->nent = 256;
  if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) die("KVM_GET_SUPPORTED_CPUID");
  if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0) die("KVM_SET_CPUID2");
  struct kvm_sregs sregs;
  if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0) die("KVM_GET_SREGS");
  struct kvm_segment *segs[] = {&sregs.cs, &sregs.ds, &sregs.es, &sregs.fs, &sregs.gs, &sregs.ss};
  for (int i = 0; i < 6; i++) segs[i]->base = 0, segs[i]->selector = 0, segs[i]->limit = 0xffff;
  if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0) die("KVM_SET_SREGS");
  struct kvm_regs regs = {.rip = entry, .rsp = 0x7000, .rflags = 2};
  if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0) die("KVM_SET_REGS");
  unsigned long exits = 0;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (;;) {
    if (ioctl(vcpu, KVM_RUN, 0) < 0) die("KVM_RUN");
    if (run->exit_reason != KVM_EXIT_IO) {
      fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
      return 2;
    }
    if (run->io.port == port) exits++;
    else if (run->io.port == 0xf4) break;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  printf("%lu %lld\n", exits,
         (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
  return 0;
}
