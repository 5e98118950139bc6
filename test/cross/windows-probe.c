/*
 * One Win32 file operation per run, for the Windows tracer's oracle
 * (test/cross/trace-windows.mjs): the harness knows which path each one
 * names and which record the trace must hold for it. Built with mingw.
 *
 *   windows-probe <operation> <path> [<path>]
 *   windows-probe spawn <probe> <operation> <path>    a child doing one operation
 *   windows-probe spawn-breakaway <probe> <operation> <path>   the same, leaving the job
 */
#include <windows.h>
#include <stdio.h>
#include <wchar.h>

static int fail(const char *what) {
  fprintf(stderr, "windows-probe: %s failed: %lu\n", what, GetLastError());
  return 1;
}

static int open_with(const wchar_t *path, DWORD access, DWORD disposition) {
  HANDLE h = CreateFileW(path, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                         disposition, FILE_FLAG_BACKUP_SEMANTICS, NULL);
  if (h == INVALID_HANDLE_VALUE) return fail("CreateFileW");
  if (access & GENERIC_WRITE) {
    DWORD n;
    if (!WriteFile(h, "probe\n", 6, &n, NULL)) return fail("WriteFile");
  }
  CloseHandle(h);
  return 0;
}

int wmain(int argc, wchar_t **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: windows-probe <operation> <path> [<path>]\n");
    return 2;
  }
  const wchar_t *op = argv[1], *path = argv[2], *other = argc > 3 ? argv[3] : NULL;
  if (!wcscmp(op, L"read")) return open_with(path, GENERIC_READ, OPEN_EXISTING);
  if (!wcscmp(op, L"read-missing")) {
    HANDLE h = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    return h == INVALID_HANDLE_VALUE && GetLastError() == ERROR_FILE_NOT_FOUND ? 0 : fail("a missing file's open");
  }
  if (!wcscmp(op, L"create")) return open_with(path, GENERIC_WRITE, CREATE_ALWAYS);
  if (!wcscmp(op, L"append")) return open_with(path, FILE_APPEND_DATA, OPEN_EXISTING);
  if (!wcscmp(op, L"truncate")) {
    HANDLE h = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL, TRUNCATE_EXISTING, 0, NULL);
    /* TRUNCATE_EXISTING needs write access: it fails, yet names the file. */
    if (h != INVALID_HANDLE_VALUE) CloseHandle(h);
    return open_with(path, GENERIC_WRITE, TRUNCATE_EXISTING);
  }
  if (!wcscmp(op, L"attributes")) {
    return GetFileAttributesW(path) == INVALID_FILE_ATTRIBUTES && GetLastError() != ERROR_FILE_NOT_FOUND &&
                   GetLastError() != ERROR_PATH_NOT_FOUND
               ? fail("GetFileAttributesW")
               : 0;
  }
  if (!wcscmp(op, L"attributes-ex")) {
    WIN32_FILE_ATTRIBUTE_DATA data;
    return GetFileAttributesExW(path, GetFileExInfoStandard, &data) ? 0 : fail("GetFileAttributesExW");
  }
  if (!wcscmp(op, L"list")) {
    size_t size = wcslen(path) + 3;
    wchar_t *pattern = HeapAlloc(GetProcessHeap(), 0, size * sizeof *pattern);
    swprintf(pattern, size, L"%ls\\*", path);
    WIN32_FIND_DATAW data;
    HANDLE h = FindFirstFileW(pattern, &data);
    HeapFree(GetProcessHeap(), 0, pattern);
    if (h == INVALID_HANDLE_VALUE) return fail("FindFirstFileW");
    int n = 0;
    do n++;
    while (FindNextFileW(h, &data));
    FindClose(h);
    return n > 0 ? 0 : 1;
  }
  if (!wcscmp(op, L"find-one")) {
    WIN32_FIND_DATAW data;
    HANDLE h = FindFirstFileW(path, &data);
    if (h != INVALID_HANDLE_VALUE) FindClose(h);
    return 0;
  }
  if (!wcscmp(op, L"delete")) return DeleteFileW(path) ? 0 : fail("DeleteFileW");
  if (!wcscmp(op, L"move")) return MoveFileExW(path, other, MOVEFILE_REPLACE_EXISTING) ? 0 : fail("MoveFileExW");
  if (!wcscmp(op, L"copy")) return CopyFileW(path, other, FALSE) ? 0 : fail("CopyFileW");
  if (!wcscmp(op, L"hardlink")) return CreateHardLinkW(other, path, NULL) ? 0 : fail("CreateHardLinkW");
  if (!wcscmp(op, L"mkdir")) return CreateDirectoryW(path, NULL) ? 0 : fail("CreateDirectoryW");
  if (!wcscmp(op, L"rmdir")) return RemoveDirectoryW(path) ? 0 : fail("RemoveDirectoryW");
  if (!wcscmp(op, L"delete-on-close")) {
    HANDLE h = CreateFileW(path, DELETE, FILE_SHARE_DELETE, NULL, OPEN_EXISTING, FILE_FLAG_DELETE_ON_CLOSE, NULL);
    if (h == INVALID_HANDLE_VALUE) return fail("CreateFileW(FILE_FLAG_DELETE_ON_CLOSE)");
    CloseHandle(h);
    return 0;
  }
  if (!wcscmp(op, L"disposition")) {
    HANDLE h = CreateFileW(path, DELETE, FILE_SHARE_DELETE, NULL, OPEN_EXISTING, 0, NULL);
    if (h == INVALID_HANDLE_VALUE) return fail("CreateFileW(DELETE)");
    FILE_DISPOSITION_INFO info = {TRUE};
    BOOL ok = SetFileInformationByHandle(h, FileDispositionInfo, &info, sizeof info);
    CloseHandle(h);
    return ok ? 0 : fail("SetFileInformationByHandle(FileDispositionInfo)");
  }
  if (!wcscmp(op, L"open-by-id")) {
    /* The file's ID, then OpenFileById on a handle of its directory: no path. */
    HANDLE file = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING, 0, NULL);
    HANDLE dir = CreateFileW(other, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING,
                             FILE_FLAG_BACKUP_SEMANTICS, NULL);
    BY_HANDLE_FILE_INFORMATION info;
    if (file == INVALID_HANDLE_VALUE || dir == INVALID_HANDLE_VALUE || !GetFileInformationByHandle(file, &info))
      return fail("CreateFileW or GetFileInformationByHandle");
    FILE_ID_DESCRIPTOR id;
    ZeroMemory(&id, sizeof id);
    id.dwSize = sizeof id;
    id.Type = FileIdType;
    id.FileId.QuadPart = ((LONGLONG)info.nFileIndexHigh << 32) | info.nFileIndexLow;
    /* Whether it succeeds (Wine may not support it) the trace must say it cannot name it. */
    HANDLE by_id = OpenFileById(dir, &id, GENERIC_READ, FILE_SHARE_READ, NULL, 0);
    if (by_id != INVALID_HANDLE_VALUE) CloseHandle(by_id);
    CloseHandle(dir);
    CloseHandle(file);
    return 0;
  }
  if (!wcscmp(op, L"relative-read")) {
    /* A name relative to the current directory: the trace has it absolute. */
    if (!SetCurrentDirectoryW(path)) return fail("SetCurrentDirectoryW");
    return open_with(other, GENERIC_READ, OPEN_EXISTING);
  }
  if (!wcscmp(op, L"spawn") || !wcscmp(op, L"spawn-breakaway")) {
    /* argv[2] is the probe itself, argv[3] and argv[4] the child's operation and path. */
    if (argc < 5) return 2;
    wchar_t line[4 * MAX_PATH];
    swprintf(line, 4 * MAX_PATH, L"\"%ls\" %ls \"%ls\"", path, argv[3], argv[4]);
    STARTUPINFOW si;
    ZeroMemory(&si, sizeof si);
    si.cb = sizeof si;
    PROCESS_INFORMATION pi;
    DWORD flags = wcscmp(op, L"spawn") ? CREATE_BREAKAWAY_FROM_JOB : 0;
    if (!CreateProcessW(path, line, NULL, NULL, FALSE, flags, NULL, NULL, &si, &pi)) return fail("CreateProcessW");
    WaitForSingleObject(pi.hProcess, INFINITE);
    DWORD code = 1;
    GetExitCodeProcess(pi.hProcess, &code);
    CloseHandle(pi.hThread);
    CloseHandle(pi.hProcess);
    return (int)code;
  }
  fprintf(stderr, "windows-probe: unknown operation\n");
  return 2;
}
