/*
 * raw-main <raw-addon.so> <path>: loads the addon as Node loads a native
 * module (dlopen) and runs its raw-syscall thread; prints which signals its
 * raw rt_sigprocmask calls left blocked: "SIGUSR1 blocked: 1, SIGSYS blocked: 1".
 */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  void *addon = dlopen(argv[1], RTLD_NOW);
  if (addon == NULL) return 3;
  int (*raw_thread)(const char *) = (int (*)(const char *))dlsym(addon, "raw_thread");
  if (raw_thread == NULL) return 4;
  int mask = raw_thread(argv[2]);
  if (mask < 0) return 5;
  printf("SIGUSR1 blocked: %d, SIGSYS blocked: %d\n", mask & 1, (mask >> 1) & 1);
  return 0;
}
