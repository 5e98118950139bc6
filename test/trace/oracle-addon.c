/*
 * The trace oracle's stand-in for a native addon: a shared library that
 * starts the thread the probe's raw calls run in, as a bundler's binding
 * starts its workers. The preload library turns on Syscall User Dispatch in
 * such threads (not in the program's own), so their raw calls reach its
 * SIGSYS handler.
 */
#include <pthread.h>
#include <stdint.h>

__attribute__((visibility("default"))) int oracle_in_thread(void *(*body)(void *), void *arg) {
  pthread_t thread;
  void *result = 0;
  if (pthread_create(&thread, NULL, body, arg) != 0) return -11;
  pthread_join(thread, &result);
  return (int)(intptr_t)result;
}
