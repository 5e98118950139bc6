/*
 * static-reader <file> <probe> <written>
 *
 * Test program for the tracer, linked statically so no preload library can
 * load into it: reads <file>, looks <probe> up with a raw system call (no
 * libc wrapper), creates <written>, and asks for an io_uring. Prints the
 * io_uring_setup outcome ("io_uring: <errno name or fd>").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  char buf[64];
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0 || read(fd, buf, sizeof buf) < 0) return 3;
  close(fd);
  struct stat st;
#if defined(SYS_newfstatat)
  syscall(SYS_newfstatat, AT_FDCWD, argv[2], &st, 0);
#else
  syscall(SYS_fstatat, AT_FDCWD, argv[2], &st, 0);
#endif
  fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0 || write(fd, "static\n", 7) != 7) return 4;
  close(fd);
  unsigned char params[120] = {0};
  long ring = syscall(SYS_io_uring_setup, 1, params);
  printf("io_uring: %s\n", ring < 0 ? (errno == ENOSYS ? "ENOSYS" : strerror(errno)) : "ring");
  return 0;
}
