/*
 * trace-smoke <input> <absent> <output>
 *
 * What scripts/ci-cross.sh runs under the tracer built for another target:
 * reads <input> through libc, looks <absent> up, writes <output>. Built
 * dynamically against that target's libc, so the preload library loads.
 */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 4) return 2;
  char buf[64];
  int fd = open(argv[1], O_RDONLY);
  if (fd < 0 || read(fd, buf, sizeof buf) < 0) return 3;
  close(fd);
  struct stat st;
  if (stat(argv[2], &st) == 0) return 4;
  FILE *out = fopen(argv[3], "w");
  if (out == NULL || fputs("smoke\n", out) < 0 || fclose(out) != 0) return 5;
  return 0;
}
