//! The syntax check of an env glob, for the tool side: a tool learns of a
//! glob the runner would refuse whether or not a runner is listening, and
//! without the glob library in its build. It follows globset's parser as the
//! runner configures it (`*` matching any character, `\` escaping) rule for
//! rule and gives its reasons word for word; `src-ts/env-glob.ts` is the same
//! check for TypeScript tools.

use std::str::Chars;

use super::{InvalidGlob, MAX_GLOB_LEN};

/// globset's limit on `{` groups open at once.
const MAX_ALTERNATES_DEPTH: usize = 100;

const UNCLOSED_CLASS: &str = "unclosed character class; missing ']'";

/// Checks that the runner would compile `glob`: the reason it would not, in
/// the glob library's words, is the error.
pub fn check_glob(glob: &str) -> Result<(), InvalidGlob> {
    match syntax_error(glob) {
        Some(reason) => Err(InvalidGlob::new(glob, reason)),
        None => Ok(()),
    }
}

/// Why globset refuses `glob`, or `None` when it parses. Only `[`, `{`, `}`
/// and `\` can make a glob invalid.
fn syntax_error(glob: &str) -> Option<String> {
    if glob.len() > MAX_GLOB_LEN {
        return Some(format!(
            "glob of {} bytes exceeds the {MAX_GLOB_LEN}-byte limit",
            glob.len()
        ));
    }
    let mut open = 0;
    let mut chars = glob.chars();
    while let Some(c) = chars.next() {
        match c {
            // `\x` is the literal `x`.
            '\\' if chars.next().is_none() => return Some("dangling '\\'".to_owned()),
            '[' => {
                if let Err(reason) = skip_class(&mut chars) {
                    return Some(reason);
                }
            }
            '{' if open == MAX_ALTERNATES_DEPTH => {
                return Some("alternate groups nested too deeply".to_owned())
            }
            '{' => open += 1,
            '}' if open == 0 => {
                return Some(
                    "unopened alternate group; missing '{' (maybe escape '}' with '[}]'?)"
                        .to_owned(),
                )
            }
            '}' => open -= 1,
            _ => {}
        }
    }
    (open > 0)
        .then(|| "unclosed alternate group; missing '}' (maybe escape '{' with '[{]'?)".to_owned())
}

/// Consumes the class whose `[` was just read, through its closing `]`, or
/// says why it is invalid. A `]` or `-` first is literal, as is a `-` last;
/// `\` is not special inside brackets.
fn skip_class(chars: &mut Chars<'_>) -> Result<(), String> {
    if matches!(chars.clone().next(), Some('!' | '^')) {
        chars.next();
    }
    let mut first = true;
    let mut in_range = false;
    // The start of the class's last range, which a `-x` that follows extends.
    let mut last_start = '\0';
    loop {
        let c = chars.next().ok_or_else(|| UNCLOSED_CLASS.to_owned())?;
        match c {
            ']' if !first => return Ok(()),
            '-' if !first => {
                if in_range {
                    check_range(last_start, c)?;
                }
                in_range = !in_range;
            }
            '[' if !in_range && chars.clone().next() == Some(':') => {
                last_start = skip_posix_class(chars).unwrap_or('[');
            }
            c if in_range => {
                check_range(last_start, c)?;
                in_range = false;
            }
            c => last_start = c,
        }
        first = false;
    }
}

/// Consumes a POSIX class (`[:alpha:]`) whose `[` was just read, and returns
/// the start of its last range (`[` for a name globset does not know, which
/// it still consumes); `None`, consuming nothing, when there is none: up to 8
/// lowercase letters between `[:` and `:]`.
fn skip_posix_class(chars: &mut Chars<'_>) -> Option<char> {
    let mut rest = chars.clone();
    rest.next(); // The `:`.
    let mut name = String::new();
    loop {
        match rest.next()? {
            ':' if rest.clone().next() == Some(']') => {
                rest.next();
                *chars = rest;
                return Some(posix_class_last_start(&name).unwrap_or('['));
            }
            c if c.is_ascii_lowercase() && name.len() < 8 => name.push(c),
            _ => return None,
        }
    }
}

/// Where the last range of a POSIX class starts: a range that follows the
/// class in the same brackets (`[[:alpha:]-z]`) extends it.
fn posix_class_last_start(name: &str) -> Option<char> {
    Some(match name {
        "alnum" | "alpha" | "lower" | "xdigit" => 'a',
        "blank" | "print" | "space" => ' ',
        "cntrl" => '\x7f',
        "digit" => '0',
        "graph" => '!',
        "punct" => '{',
        "upper" => 'A',
        _ => return None,
    })
}

fn check_range(start: char, end: char) -> Result<(), String> {
    if end < start {
        Err(format!("invalid range; '{start}' > '{end}'"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Globs at the edges of the syntax, valid and invalid.
    #[cfg(feature = "server")]
    const GLOBS: &[&str] = &[
        "",
        "VITE_*",
        "a?b",
        "*",
        "**",
        "a,b",
        "[abc]",
        "[a-z]",
        "[!a]",
        "[^a]",
        "[]]",
        "[]a]",
        "[-]",
        "[a-]",
        "[!]]",
        "[!-a]",
        "[a\\]",
        "{a,b}",
        "{}",
        "{a,{b,c}}",
        "\\*",
        "\\\\",
        "\\",
        "a\\",
        "[",
        "[]",
        "[!",
        "[!]",
        "[z-a]",
        "[z--]",
        "[a--]",
        "[--a]",
        "[a-b-c]",
        "[a-c-b]",
        "{a",
        "a}",
        "{a,b",
        "{a,{b,c}",
        "a,b}",
        "{a,b}}",
        "[{]",
        "[}]",
        "{[}]",
        "[[:alpha:]]",
        "[[:digit:]-5]",
        "[[:digit:]-/]",
        "[[:alpha:]-z]",
        "[[:alpha:]-Z]",
        "[[:punct:]-{]",
        "[[:punct:]-z]",
        "[[:bogus:]]",
        "[[:bogus:]-Z]",
        "[[:bogus:]-Z",
        "[[:toolongname:]]",
        "[[:ALPHA:]]",
        "[[:alpha:",
        "[[:",
        "[[]",
        "[a-[:alpha:]]",
        "[é-a]",
        "[a-é]",
        "[🦀-a]",
        "é*{ü,[ß]}",
    ];

    #[cfg(feature = "server")]
    fn globset_reason(glob: &str) -> Option<String> {
        super::super::matcher::env_glob(glob, super::super::NameCase::Exact)
            .err()
            .map(|err| err.reason())
    }

    #[test]
    fn the_check_refuses_what_the_runner_refuses() {
        let invalid = ["[", "[z-a]", "{a", "a}", "\\"];
        for glob in invalid {
            assert!(check_glob(glob).is_err(), "{glob} is invalid");
        }
        for glob in ["VITE_*", "a?b", "[abc]", "[a-z]", "[!a]", "{a,b}"] {
            check_glob(glob).unwrap();
        }
        assert_eq!(
            check_glob("[z-a]").unwrap_err().to_string(),
            "invalid env glob \"[z-a]\": invalid range; 'z' > 'a'"
        );
    }

    #[test]
    fn nested_groups_are_refused_past_globsets_limit() {
        let nested = |depth| format!("{}a{}", "{".repeat(depth), "}".repeat(depth));
        check_glob(&nested(MAX_ALTERNATES_DEPTH)).unwrap();
        let err = check_glob(&nested(MAX_ALTERNATES_DEPTH + 1)).unwrap_err();
        assert_eq!(err.reason(), "alternate groups nested too deeply");
        let long = "a".repeat(MAX_GLOB_LEN + 1);
        assert_eq!(
            check_glob(&long).unwrap_err().reason(),
            "glob of 4097 bytes exceeds the 4096-byte limit"
        );
    }

    /// The hand-written check and globset (as the runner configures it)
    /// accept the same globs and refuse the others for the same reason.
    #[cfg(feature = "server")]
    #[test]
    fn the_check_agrees_with_globset() {
        let nested = |depth| format!("{}a{}", "{".repeat(depth), "}".repeat(depth));
        let deep = [
            nested(MAX_ALTERNATES_DEPTH),
            nested(MAX_ALTERNATES_DEPTH + 1),
        ];
        let globs = GLOBS.iter().copied().chain(deep.iter().map(String::as_str));
        for glob in globs {
            assert_eq!(syntax_error(glob), globset_reason(glob), "{glob:?}");
        }
    }

    /// The same, over random globs made of the characters the syntax gives a
    /// meaning to.
    #[cfg(feature = "server")]
    #[test]
    fn the_check_agrees_with_globset_on_random_globs() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};

        let alphabet = prop::sample::select(vec![
            '[', ']', '{', '}', '\\', '!', '^', '-', ':', ',', '*', '?', 'a', 'z', 'Z', '0', 'é',
        ]);
        let lowercase = prop::sample::select(vec!["alpha", "digit", "punct", "bogus"]);
        let piece = prop_oneof![
            4 => alphabet.prop_map(String::from),
            1 => lowercase.prop_map(|name| format!("[:{name}:]")),
        ];
        let glob = prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat());
        let mut runner = TestRunner::new(Config {
            cases: 20_000,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&glob, |glob| {
                prop_assert_eq!(syntax_error(&glob), globset_reason(&glob), "{:?}", glob);
                Ok(())
            })
            .unwrap();
    }
}
