//! Lexical rules for the names a traced call passes, the same as `trace.h`
//! gives the preload library: a `RESOLVE_IN_ROOT` name, and the links of a
//! process in `/proc`.

/// The name a `RESOLVE_IN_ROOT` path has relative to its root directory: a
/// leading `/` is the root and `..` never climbs above it, so `/../a/./b` is
/// `a/b` and `/` is `.`.
pub fn in_root(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                let parent = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                out.truncate(parent);
            }
            name => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(name);
            }
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    out
}

/// Where a process's link in `/proc` ends in `path` (absolute):
/// `/proc/<self|thread-self|pid>/cwd`, `.../root` or `.../fd/<n>`, alone or
/// followed by `/`. `Some((process_end, link_end))`: the process part
/// (`/proc/self`) ends at `process_end`, the link at `link_end`. The tracer
/// records such a path as the link's target followed by the rest, not as a
/// pseudo-file.
pub fn proc_link(path: &[u8]) -> Option<(usize, usize)> {
    const PROC: &[u8] = b"/proc/";
    let process = path.strip_prefix(PROC)?;
    let process_len = if process.starts_with(b"self/") {
        4
    } else if process.starts_with(b"thread-self/") {
        11
    } else {
        let digits = leading_digits(process);
        if digits == 0 || process.get(digits) != Some(&b'/') {
            return None;
        }
        digits
    };
    let process_end = PROC.len() + process_len;
    let link = &path[process_end + 1..];
    let link_len = if link.starts_with(b"cwd") {
        3
    } else if link.starts_with(b"root") {
        4
    } else if link.starts_with(b"fd/") && leading_digits(&link[3..]) > 0 {
        3 + leading_digits(&link[3..])
    } else {
        return None;
    };
    let link_end = process_end + 1 + link_len;
    matches!(path.get(link_end), None | Some(b'/')).then_some((process_end, link_end))
}

fn leading_digits(text: &[u8]) -> usize {
    text.iter().take_while(|b| b.is_ascii_digit()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_in_root_never_climbs_above_it() {
        for (path, name) in [
            ("/../a/./b", "a/b"),
            ("/", "."),
            ("", "."),
            ("a/b/../../..", "."),
            ("a//b/", "a/b"),
            ("../x/../y", "y"),
            ("a/b/..", "a"),
        ] {
            assert_eq!(in_root(path.as_bytes()), name.as_bytes(), "{path}");
        }
    }

    #[test]
    fn finds_the_links_of_a_process() {
        for (path, link) in [
            ("/proc/self/cwd", Some((10, 14))),
            ("/proc/self/cwd/a/b", Some((10, 14))),
            ("/proc/thread-self/root", Some((17, 22))),
            ("/proc/42/fd/7", Some((8, 13))),
            ("/proc/42/fd/17/x", Some((8, 14))),
            ("/proc/self/cwdx", None),
            ("/proc/self/fd/", None),
            ("/proc/self/fd/x", None),
            ("/proc/self/status", None),
            ("/proc/self", None),
            ("/proc/x/cwd", None),
            ("/proc/cwd", None),
            ("/sys/self/cwd", None),
        ] {
            assert_eq!(proc_link(path.as_bytes()), link, "{path}");
        }
    }
}
