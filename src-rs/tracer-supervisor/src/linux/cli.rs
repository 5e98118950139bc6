//! The command line: `runner-aware-trace [--mode preload|seccomp] -- <command> [args...]`.

use std::ffi::OsString;

/// What the supervisor prints when its command line is not one it takes.
pub const USAGE: &str = "usage: runner-aware-trace [--mode preload|seccomp] -- <command> [args...]";

/// Which file system calls the supervisor is notified of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// All but those made from the preload library's trampoline page, which
    /// the library recorded itself.
    Preload,
    /// Every one of the task's.
    Seccomp,
}

impl Mode {
    /// The mode's name, as the command line and the begin record spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Preload => "preload",
            Self::Seccomp => "seccomp",
        }
    }
}

/// A command line the supervisor takes.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// `--mode`, `preload` when not given.
    pub mode: Mode,
    /// Everything after `--`: the program and its arguments, never empty.
    pub command: Vec<OsString>,
}

/// The options in `args` (the program's name left out), or `None` when they
/// are not a command line the supervisor takes: `--` and a command must come.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Option<Options> {
    let mut args = args.into_iter();
    let mut mode = Mode::Preload;
    loop {
        let arg = args.next()?;
        if arg == "--" {
            break;
        }
        if arg != "--mode" {
            return None;
        }
        mode = match args.next()?.to_str()? {
            "preload" => Mode::Preload,
            "seccomp" => Mode::Seccomp,
            _ => return None,
        };
    }
    let command: Vec<OsString> = args.collect();
    (!command.is_empty()).then_some(Options { mode, command })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &[&str]) -> Option<Options> {
        parse(words.iter().map(OsString::from))
    }

    #[test]
    fn takes_a_mode_and_a_command_after_the_separator() {
        let options = parse_words(&["--mode", "seccomp", "--", "ls", "-l"]).unwrap();
        assert_eq!(options.mode, Mode::Seccomp);
        assert_eq!(options.command, ["ls", "-l"]);
        let options = parse_words(&["--", "--mode"]).unwrap();
        assert_eq!(options.mode, Mode::Preload);
        assert_eq!(options.command, ["--mode"]);
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for words in [
            &[][..],
            &["ls"],
            &["--"],
            &["--mode"],
            &["--mode", "strace", "--", "ls"],
            &["--verbose", "--", "ls"],
            &["--mode", "preload", "ls"],
        ] {
            assert_eq!(parse_words(words), None, "{words:?}");
        }
    }
}
