//! docs/protocol.md against the crate: every example frame in it is the exact
//! bytes this implementation writes for the JSON shown above it, and the
//! names and limits it states are the crate's.

use runner_aware::client::DEFAULT_TIMEOUT;
use runner_aware::env::MAX_GLOB_LEN;
use runner_aware::protocol::{
    encode_frame, format_size, ClientMessage, DecodeError, ServerMessage, ENV_CLIENT_PATH,
    ENV_DEBUG, ENV_DIR, ENV_SOCKET, ENV_TIMEOUT_MS, ENV_TOKEN, FEATURES, HEADER_LEN,
    LOST_MARKER_PREFIX, MAX_CALLER_BYTES, MAX_CLIENT_FRAME, MAX_COMMAND_BYTES, MAX_HELLO_FRAME,
    MAX_SERVER_FRAME, PROTOCOL_VERSION,
};
use runner_aware::reports::{MAX_LISTED_ERRORS, MAX_RECORDED_BYTES, MAX_RECORDED_ENTRIES};
use runner_aware::server::{DEFAULT_CLOSE_TIMEOUT, HANDSHAKE_TIMEOUT};
use runner_aware::session::MAX_PENDING_ANSWERS;
use runner_aware::EnvQuery;

const DOC: &str = include_str!("../../../docs/protocol.md");

/// The ops a server sends; every other op in an example is a client's.
const SERVER_OPS: &[&str] = &["welcome", "refused", "env", "envs", "unsupported"];

/// A fenced code block of the document.
struct Block {
    info: String,
    body: String,
    /// 1-based line of the opening fence.
    line: usize,
}

fn blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for (index, line) in DOC.lines().enumerate() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_owned(),
                    body: String::new(),
                    line: index + 1,
                });
            }
            (Some(_), Some("")) => blocks.extend(open.take()),
            (Some(block), _) => {
                block.body.push_str(line);
                block.body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(
        open.is_none(),
        "docs/protocol.md has an unclosed code block"
    );
    blocks
}

/// The bytes of a `frame` block: two hex digits a byte, bytes separated by a
/// space, 16 to a line (the last line may have fewer).
fn parse_hex(block: &Block) -> Vec<u8> {
    let lines: Vec<&str> = block.body.lines().collect();
    assert!(
        !lines.is_empty(),
        "empty frame block at line {}",
        block.line
    );
    let mut bytes = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let tokens: Vec<&str> = line.split(' ').collect();
        let full = i + 1 < lines.len();
        assert!(
            if full {
                tokens.len() == 16
            } else {
                (1..=16).contains(&tokens.len())
            },
            "frame block at line {}: line {} has {} bytes",
            block.line,
            i + 1,
            tokens.len()
        );
        for token in tokens {
            assert!(
                token.len() == 2 && token.bytes().all(|b| b.is_ascii_hexdigit()),
                "frame block at line {}: {token:?} is not a hex byte",
                block.line
            );
            bytes.push(u8::from_str_radix(token, 16).unwrap());
        }
    }
    bytes
}

fn encoded<T: serde::Serialize>(message: &T, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(message, limit, &mut out).unwrap();
    out
}

/// A decoded example.
enum Decoded {
    Client(ClientMessage),
    Server(ServerMessage),
    UnknownOp { op: String, reply: bool },
}

#[test]
fn example_frames_are_byte_exact() {
    let blocks = blocks();
    let mut decoded = Vec::new();
    for (index, block) in blocks.iter().enumerate() {
        if block.info != "frame" {
            continue;
        }
        let at = block.line;
        let bytes = parse_hex(block);
        assert!(
            bytes.len() >= HEADER_LEN,
            "frame at line {at} has no length"
        );
        let (header, payload) = bytes.split_at(HEADER_LEN);
        let len = u32::from_le_bytes(header.try_into().unwrap()) as usize;
        assert_eq!(
            len,
            payload.len(),
            "frame at line {at}: the length prefix is not the payload length"
        );

        // The JSON shown just before the frame is its payload.
        let json = index
            .checked_sub(1)
            .map(|i| &blocks[i])
            .filter(|b| b.info == "json")
            .unwrap_or_else(|| panic!("frame at line {at} does not follow a json block"));
        assert_eq!(
            json.body.trim_end(),
            std::str::from_utf8(payload).unwrap(),
            "frame at line {at} does not encode the JSON above it"
        );

        let op = serde_json::from_slice::<serde_json::Value>(payload).unwrap()["op"]
            .as_str()
            .unwrap_or_else(|| panic!("frame at line {at} names no op"))
            .to_owned();
        if SERVER_OPS.contains(&op.as_str()) {
            let message = ServerMessage::decode(payload)
                .unwrap_or_else(|err| panic!("frame at line {at} does not decode: {err}"));
            assert!(len <= MAX_SERVER_FRAME);
            assert_eq!(
                encoded(&message, MAX_SERVER_FRAME),
                bytes,
                "frame at line {at} is not what the server writes"
            );
            decoded.push(Decoded::Server(message));
        } else {
            match ClientMessage::decode(payload) {
                Ok(message) => {
                    let limit = if op == "hello" {
                        MAX_HELLO_FRAME
                    } else {
                        MAX_CLIENT_FRAME
                    };
                    assert!(len <= limit, "frame at line {at} exceeds its limit");
                    assert_eq!(
                        encoded(&message, limit),
                        bytes,
                        "frame at line {at} is not what the client writes"
                    );
                    decoded.push(Decoded::Client(message));
                }
                Err(DecodeError::UnknownOp { op, reply }) => {
                    decoded.push(Decoded::UnknownOp { op, reply });
                }
                Err(err) => panic!("frame at line {at} does not decode: {err}"),
            }
        }
    }

    assert!(
        decoded.len() >= 8,
        "docs/protocol.md has only {} frame blocks",
        decoded.len()
    );
    let has = |wanted: &dyn Fn(&Decoded) -> bool| decoded.iter().any(wanted);
    assert!(has(&|d| matches!(
        d,
        Decoded::Client(ClientMessage::Hello {
            min_version: Some(1),
            max_version: Some(PROTOCOL_VERSION),
            version: None,
            ..
        })
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Client(ClientMessage::Hello {
            min_version: None,
            max_version: None,
            version: Some(1),
            ..
        })
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Server(ServerMessage::Welcome { version, features })
            if *version == PROTOCOL_VERSION && features.iter().map(String::as_str).eq(FEATURES.iter().copied())
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Server(ServerMessage::Refused { .. })
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Client(ClientMessage::IgnoreInput { .. })
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Client(ClientMessage::GetEnv { .. })
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Server(ServerMessage::Env { values }) if values.contains(&None)
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Client(ClientMessage::GetEnvs {
            query: EnvQuery::Glob(_),
            ..
        })
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Server(ServerMessage::Envs { matches }) if !matches.is_empty()
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Client(ClientMessage::DisableCache {
            reason: Some(_),
            ..
        })
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::Client(ClientMessage::DisableCache {
            reason: None,
            caller: Some(_),
            command: Some(_),
        })
    )));
    assert!(has(&|d| matches!(
        d,
        Decoded::UnknownOp { reply: true, .. }
    )));
    for d in &decoded {
        if let Decoded::UnknownOp { op, .. } = d {
            assert!(!SERVER_OPS.contains(&op.as_str()));
        }
    }
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[test]
fn names_and_limits_match_the_crate() {
    for name in [
        ENV_SOCKET,
        ENV_TOKEN,
        ENV_DIR,
        ENV_TIMEOUT_MS,
        ENV_DEBUG,
        ENV_CLIENT_PATH,
    ] {
        assert!(
            DOC.contains(&format!("| `{name}` |")),
            "{name} is not listed"
        );
    }
    assert!(DOC.contains(&format!("`{LOST_MARKER_PREFIX}<pid>-<nanos>.json`")));
    let rows = [
        format!("| `MAX_HELLO_FRAME` | {} |", format_size(MAX_HELLO_FRAME)),
        format!("| `MAX_CLIENT_FRAME` | {} |", format_size(MAX_CLIENT_FRAME)),
        format!("| `MAX_SERVER_FRAME` | {} |", format_size(MAX_SERVER_FRAME)),
        format!("| `MAX_GLOB_LEN` | {MAX_GLOB_LEN} bytes |"),
        format!(
            "| `MAX_RECORDED_ENTRIES` | {} |",
            thousands(MAX_RECORDED_ENTRIES)
        ),
        format!(
            "| `MAX_RECORDED_BYTES` | {} |",
            format_size(MAX_RECORDED_BYTES)
        ),
        format!("| `MAX_LISTED_ERRORS` | {MAX_LISTED_ERRORS} |"),
        format!("| `MAX_CALLER_BYTES` | {} |", format_size(MAX_CALLER_BYTES)),
        format!(
            "| `MAX_COMMAND_BYTES` | {} |",
            format_size(MAX_COMMAND_BYTES)
        ),
        format!("| handshake timeout | {} s |", HANDSHAKE_TIMEOUT.as_secs()),
        format!(
            "| client timeout | {} s by default,",
            DEFAULT_TIMEOUT.as_secs()
        ),
        format!(
            "| close grace period | {} s by default,",
            DEFAULT_CLOSE_TIMEOUT.as_secs()
        ),
        format!("| pending answers | {} |", format_size(MAX_PENDING_ANSWERS)),
    ];
    for row in rows {
        assert!(DOC.contains(&row), "docs/protocol.md lacks {row:?}");
    }
    let default_ms = format!("the timeout is {}.", DEFAULT_TIMEOUT.as_millis());
    assert!(
        DOC.contains(&default_ms),
        "docs/protocol.md lacks {default_ms:?}"
    );
}
