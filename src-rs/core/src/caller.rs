//! Who called `disableCache`, read from the JavaScript stack at the call, so
//! a runner's user sees which code disabled caching (`vite … _createServer`)
//! even when it gave no reason.
//!
//! The caller is the first frame of a V8 stack trace that is neither a
//! wrapper that only forwards the call (a function named `disableCache`: the
//! tool API's, `@voidzero-dev/vite-task-client`'s, or a copy of it bundled
//! into a tool), nor runner-aware's own code, nor Node's (`node:internal/…`).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::protocol::ENV_CLIENT_PATH;

/// Where to look for the caller.
#[derive(Debug, Clone, Default)]
pub struct StackContext {
    /// The process's current directory: other code is named relative to it.
    pub cwd: Option<PathBuf>,
    /// runner-aware's own JavaScript outside `node_modules` (a checkout's
    /// `dist`), skipped like `node_modules/runner-aware`.
    pub own_js: Option<PathBuf>,
}

impl StackContext {
    /// The context of this process: its current directory, and the `dist`
    /// beside the addon the runner handed it (`VP_RUN_NODE_CLIENT_PATH`) when
    /// that is runner-aware's (a checkout's `runner-aware.<triple>.node`).
    pub fn of_process() -> Self {
        let addon = std::env::var_os(ENV_CLIENT_PATH).map(PathBuf::from);
        let own_js = addon
            .filter(|addon| {
                addon
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("runner-aware."))
            })
            .and_then(|addon| Some(addon.parent()?.join("dist")));
        Self {
            cwd: std::env::current_dir().ok(),
            own_js,
        }
    }
}

/// The caller named by a V8 stack trace (`error.stack`): `"<package> …
/// <function>"` for code under `node_modules` (`"vite … _createServer"`),
/// `"<file> <function>"` for other code, its path relative to the current
/// directory when it lies beneath it (`"scripts/build.mjs main"`); the
/// function is left out at a module's top level. `None` when no frame
/// qualifies, or the stack is not in V8's format (a tool replaced
/// `Error.prepareStackTrace`).
pub fn from_js_stack(stack: &str, context: &StackContext) -> Option<String> {
    let own_js = context
        .own_js
        .as_deref()
        .and_then(Path::to_str)
        .map(|dir| format!("{}/", dir.replace('\\', "/").trim_end_matches('/')));
    stack
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("at "))
        .map(Frame::parse)
        .find(|frame| !frame.is_forwarder(own_js.as_deref()) && !frame.is_internal())
        .map(|frame| frame.describe(context.cwd.as_deref()))
}

/// One line of a stack trace: `at [async ][new ]function (location)` or
/// `at location`, the location ending in `:line:column`.
struct Frame<'a> {
    function: Option<&'a str>,
    location: &'a str,
}

impl<'a> Frame<'a> {
    fn parse(text: &'a str) -> Self {
        let (function, location) = match text.strip_suffix(')').and_then(|t| t.split_once(" (")) {
            Some((function, location)) => (Some(function), location),
            None => (None, text),
        };
        let function = function
            .map(|f| f.strip_prefix("async ").unwrap_or(f))
            .map(|f| f.strip_prefix("new ").unwrap_or(f))
            // `obj.method [as alias]`: the name it was defined with.
            .map(|f| f.split_once(" [as ").map_or(f, |(name, _)| name))
            .filter(|f| !f.is_empty() && !f.ends_with("<anonymous>"));
        Self {
            function,
            location: strip_position(location),
        }
    }

    /// A function that only passes the call on, or runner-aware's own code.
    fn is_forwarder(&self, own_js: Option<&str>) -> bool {
        let name = self.function.map(|f| f.rsplit('.').next().unwrap_or(f));
        let path = self.path();
        name == Some("disableCache")
            || path.contains("/node_modules/runner-aware/")
            || own_js.is_some_and(|own| path.starts_with(own))
    }

    /// Node's own code, a native function, or an evaluated string: no file a
    /// user could point at.
    fn is_internal(&self) -> bool {
        let location = self.location;
        location.starts_with("node:")
            || location.starts_with("internal/")
            || location.starts_with("eval at ")
            // `native`, `<anonymous>`, `index 0` (`Promise.all`): no path.
            // `[eval]` is `node -e` code, which is the caller's.
            || !(location.contains('/') || location.contains('\\') || location.starts_with('['))
    }

    /// The location as a path with `/` separators.
    fn path(&self) -> Cow<'a, str> {
        let Some(url) = self.location.strip_prefix("file://") else {
            return match self.location.contains('\\') {
                true => self.location.replace('\\', "/").into(),
                false => self.location.into(),
            };
        };
        let path = percent_decode(url);
        // `file:///C:/x` on Windows.
        match path.as_bytes() {
            [b'/', drive, b':', ..] if drive.is_ascii_alphabetic() => path[1..].to_owned().into(),
            _ => path.into(),
        }
    }

    fn describe(&self, cwd: Option<&Path>) -> String {
        let path = self.path();
        let module = match path.rfind("/node_modules/") {
            Some(at) => {
                let rest = &path[at + "/node_modules/".len()..];
                let mut parts = rest.split('/');
                let first = parts.next().unwrap_or_default();
                let package = match (first.starts_with('@'), parts.next()) {
                    (true, Some(name)) => format!("{first}/{name}"),
                    _ => first.to_owned(),
                };
                return match self.function {
                    Some(function) => format!("{package} … {function}"),
                    None => package,
                };
            }
            None => relative_to(&path, cwd),
        };
        match self.function {
            Some(function) => format!("{module} {function}"),
            None => module,
        }
    }
}

/// `location` without its `:line:column` (or `:line`) suffix.
fn strip_position(location: &str) -> &str {
    let mut rest = location;
    for _ in 0..2 {
        match rest.rsplit_once(':') {
            Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => {
                rest = head;
            }
            _ => break,
        }
    }
    rest
}

/// `path` relative to `cwd` when it lies beneath it, else whole.
fn relative_to(path: &str, cwd: Option<&Path>) -> String {
    let Some(cwd) = cwd.and_then(Path::to_str) else {
        return path.to_owned();
    };
    let cwd = cwd.replace('\\', "/");
    let cwd = cwd.trim_end_matches('/');
    match path
        .strip_prefix(cwd)
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ => path.to_owned(),
    }
}

/// A file URL's path with `%XX` escapes decoded (invalid UTF-8 replaced).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, ..) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(stack: &str) -> Option<String> {
        let context = StackContext {
            cwd: Some("/src/app".into()),
            own_js: Some("/src/runner-aware/dist".into()),
        };
        from_js_stack(stack, &context)
    }

    #[test]
    fn stock_vite_is_named_by_package_and_function() {
        let stack = "Error\n    at disableCache (file:///src/app/node_modules/vite/dist/node/chunks/node.js:146:10)\n    at _createServer (file:///src/app/node_modules/vite/dist/node/chunks/node.js:24749:2)\n    at createServer$2 (file:///src/app/node_modules/vite/dist/node/chunks/node.js:24746:9)\n    at CAC.<anonymous> (file:///src/app/node_modules/vite/dist/node/cli.js:700:30)";
        assert_eq!(caller(stack).as_deref(), Some("vite … _createServer"));
    }

    #[test]
    fn the_tool_api_and_runner_aware_itself_are_skipped() {
        let stack = "Error\n    at disableCache (/src/app/node_modules/runner-aware/dist/index.cjs:200:12)\n    at Object.forwardUpstream (/src/app/node_modules/runner-aware/dist/runner.cjs:300:5)\n    at async Promise.all (index 0)\n    at async startPreview (/src/app/node_modules/@acme/ssr/lib/preview.js:12:3)";
        assert_eq!(caller(stack).as_deref(), Some("@acme/ssr … startPreview"));
    }

    #[test]
    fn own_files_are_named_relative_to_the_cwd() {
        let stack = "Error\n    at Object.disableCache (file:///src/runner-aware/dist/index.mjs:199:10)\n    at node:internal/process/task_queues:95:5\n    at watch [as run] (file:///src/app/scripts/my%20build.mjs:9:3)";
        assert_eq!(caller(stack).as_deref(), Some("scripts/my build.mjs watch"));
        let top_level = "Error\n    at disableCache (file:///src/runner-aware/dist/index.mjs:199:10)\n    at forwardUpstream (file:///src/runner-aware/dist/runner.mjs:300:5)\n    at file:///elsewhere/tool.mjs:3:1";
        assert_eq!(caller(top_level).as_deref(), Some("/elsewhere/tool.mjs"));
        let cjs = "Error\n    at disableCache (/src/runner-aware/dist/index.cjs:199:10)\n    at Object.<anonymous> (/src/app/tool.cjs:3:1)\n    at Module._compile (node:internal/modules/cjs/loader:1554:14)";
        assert_eq!(caller(cjs).as_deref(), Some("tool.cjs"));
        let eval = "Error\n    at disableCache (/src/runner-aware/dist/index.cjs:199:10)\n    at [eval]:1:35\n    at runScriptInThisContext (node:internal/vm:209:10)";
        assert_eq!(caller(eval).as_deref(), Some("[eval]"));
    }

    #[test]
    fn windows_paths_are_read() {
        let stack = "Error\n    at disableCache (file:///C:/app/node_modules/vite/dist/node/chunks/node.js:146:10)\n    at new Preview (C:\\app\\node_modules\\vite\\dist\\node\\chunks\\node.js:35707:2)";
        assert_eq!(caller(stack).as_deref(), Some("vite … Preview"));
    }

    #[test]
    fn no_usable_frame_is_no_caller() {
        assert_eq!(caller("Error"), None);
        assert_eq!(caller(""), None);
        assert_eq!(caller("Error\n    at disableCache (file:///x/dist/index.mjs:1:1)\n    at node:internal/main:1:1"), None);
        // A tool's own Error.prepareStackTrace: not V8's format.
        assert_eq!(caller("{\"frames\":[]}"), None);
    }
}
