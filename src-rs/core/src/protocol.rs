//! The wire protocol between a tool (client) and a runner (server): the
//! contract a tool in any language implements (docs/protocol.md).
//!
//! Every message is one frame: a 4-byte little-endian payload length followed by
//! that many bytes of JSON. The first frame of every connection is a
//! [`ClientMessage::Hello`] carrying the range of protocol versions the client
//! speaks and the per-server token; the server answers
//! [`ServerMessage::Welcome`] with the version chosen and its features, or
//! [`ServerMessage::Refused`]. After that, reports are fire-and-forget and env
//! queries are answered in order, one response per request.
//!
//! Evolution: unknown fields are ignored on both sides; an op the server does
//! not know is skipped (and answered with [`ServerMessage::Unsupported`] when
//! the frame says `"reply": true`), never a reason to drop the connection.

use std::collections::BTreeMap;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

use crate::env::EnvQuery;

/// The newest protocol version this build speaks.
pub const PROTOCOL_VERSION: u32 = 2;

/// The oldest protocol version this build still speaks: version 1 is version 2
/// without the version range, the features list and unknown-op tolerance.
pub const MIN_PROTOCOL_VERSION: u32 = 1;

/// What a version-2 server offers, named in its welcome: a client may use an
/// optional feature only when the welcome lists it.
pub const FEATURES: &[&str] = &["reports", "values", "env", "envs", "lostMarkers"];

/// Largest frame payload a server accepts from a client (1 MiB).
pub const MAX_CLIENT_FRAME: usize = 1 << 20;

/// Largest frame payload a server accepts before the handshake: a hello is
/// about 100 bytes, and a peer without the token must not make the runner
/// buffer a 1 MiB frame.
pub const MAX_HELLO_FRAME: usize = 4 * 1024;

/// Largest frame payload a client accepts from a server (64 MiB): a glob query
/// may match the runner's whole environment.
pub const MAX_SERVER_FRAME: usize = 64 << 20;

/// Bytes of the length prefix in front of every frame.
pub const HEADER_LEN: usize = 4;

/// Environment variable holding the path of the runner's socket.
pub const ENV_SOCKET: &str = "RUNNER_AWARE_SOCKET";

/// Environment variable holding the per-server handshake token.
pub const ENV_TOKEN: &str = "RUNNER_AWARE_TOKEN";

/// Environment variable holding the client's response timeout in milliseconds
/// (`0`: wait as long as the runner takes).
pub const ENV_TIMEOUT_MS: &str = "RUNNER_AWARE_TIMEOUT_MS";

/// Environment variable holding the runner's private directory, where a client
/// leaves lost markers. Set where the address is not a path whose parent is
/// that directory (a Windows named pipe); without it, markers go in the
/// directory holding the socket.
pub const ENV_DIR: &str = "RUNNER_AWARE_DIR";

/// Environment variable choosing the transport on Unix, read by runners and
/// tools alike: `socket`, `fifo`, or `auto` (the default: the runner serves
/// both, a tool tries the socket and falls back to the FIFOs).
pub const ENV_TRANSPORT: &str = "RUNNER_AWARE_TRANSPORT";

/// Environment variable that, when set, makes the client say on stderr why it
/// stopped talking to the runner (it is silent otherwise).
pub const ENV_DEBUG: &str = "RUNNER_AWARE_DEBUG";

/// Environment variable that `@voidzero-dev/vite-task-client` reads to find the
/// runner's addon; set to ours so tools written against it report to us.
pub const ENV_CLIENT_PATH: &str = "VP_RUN_NODE_CLIENT_PATH";

/// Most bytes of a `disableCache` frame's `command` a client sends and a
/// server records: a command line says which process it was, not all its
/// arguments.
pub const MAX_COMMAND_BYTES: usize = 1024;

/// Most bytes of a `disableCache` frame's `caller` a client sends and a
/// server records.
pub const MAX_CALLER_BYTES: usize = 256;

/// `text` cut to at most `max` bytes on a character boundary, with `…` in
/// place of what was cut (the ellipsis counts against `max`).
pub fn truncate_utf8(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    const ELLIPSIS: &str = "…";
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &text[..end]).into()
}

/// Prefix of the marker files a client leaves in the server's private
/// directory when it could not deliver something (see docs/protocol.md).
pub const LOST_MARKER_PREFIX: &str = "lost-";

/// A message sent by a tool to its runner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum ClientMessage {
    /// Opens every connection.
    Hello {
        /// The oldest protocol version the client speaks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        min_version: Option<u32>,
        /// The newest protocol version the client speaks.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_version: Option<u32>,
        /// Version 1's single version, in place of the range.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        version: Option<u32>,
        /// The token from [`ENV_TOKEN`].
        token: String,
        /// The client's process id, for error messages.
        pid: u32,
    },
    /// Reads under `path` are not inputs.
    IgnoreInput {
        /// An absolute path.
        path: String,
    },
    /// Writes under `path` are not outputs.
    IgnoreOutput {
        /// An absolute path.
        path: String,
    },
    /// `path` is an input of this run.
    AddInput {
        /// An absolute path.
        path: String,
    },
    /// `path` is an output of this run.
    AddOutput {
        /// An absolute path.
        path: String,
    },
    /// A named value that belongs in this run's cache key.
    AddValue {
        /// The value's name; not empty.
        name: String,
        /// The value.
        value: String,
    },
    /// This run must not be cached.
    DisableCache {
        /// Why, for the runner to show.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// The code that asked, for the runner to show when no reason was
        /// given: `"vite … _createServer"`, `"src/build.mjs main"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        caller: Option<String>,
        /// The calling process's command line, its arguments joined by spaces
        /// (at most [`MAX_COMMAND_BYTES`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
    },
    /// Asks for the values of `names`; answered with [`ServerMessage::Env`].
    GetEnv {
        /// The variables asked for.
        names: Vec<String>,
        /// Whether the answers belong in the cache key.
        tracked: bool,
    },
    /// Asks for every variable matching `query`; answered with [`ServerMessage::Envs`].
    GetEnvs {
        /// A glob or a literal prefix.
        query: EnvQuery,
        /// Whether the match set belongs in the cache key.
        tracked: bool,
    },
}

impl ClientMessage {
    /// A `disableCache` that says only why: what a client sends on its own
    /// behalf (a report it could not deliver, a runner it gave up on).
    pub fn disable_cache(reason: String) -> Self {
        Self::DisableCache {
            reason: Some(reason),
            caller: None,
            command: None,
        }
    }

    /// A hello for this build: every version it speaks.
    pub fn hello(token: String, pid: u32) -> Self {
        Self::Hello {
            min_version: Some(MIN_PROTOCOL_VERSION),
            max_version: Some(PROTOCOL_VERSION),
            version: None,
            token,
            pid,
        }
    }
}

/// The version a server speaking `ours` picks for a client speaking
/// `theirs` (both inclusive ranges): the newest both speak.
pub fn negotiate(theirs: (u32, u32), ours: (u32, u32)) -> Option<u32> {
    let newest = theirs.1.min(ours.1);
    (newest >= theirs.0.max(ours.0)).then_some(newest)
}

/// The op a frame names, when the frame starts with it the way every frame
/// this crate writes does (`{"op":"…"`, no whitespace, no escapes).
fn leading_op(payload: &[u8]) -> Option<&[u8]> {
    let rest = payload.strip_prefix(br#"{"op":""#)?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    (rest[end] == b'"').then(|| &rest[..end])
}

/// Fields of the ops that decode straight into a struct (see [`ClientMessage::decode`]).
mod fields {
    use serde::de::IgnoredAny;
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Path {
        // Read only so that a second `op` is rejected; its value was matched.
        #[serde(rename = "op")]
        _op: IgnoredAny,
        pub path: String,
    }

    #[derive(Deserialize)]
    pub struct GetEnv {
        // Read only so that a second `op` is rejected; its value was matched.
        #[serde(rename = "op")]
        _op: IgnoredAny,
        pub names: Vec<String>,
        pub tracked: bool,
    }

    #[derive(Deserialize)]
    pub struct Env {
        // Read only so that a second `op` is rejected; its value was matched.
        #[serde(rename = "op")]
        _op: IgnoredAny,
        pub values: Vec<Option<String>>,
    }
}

/// Why a client frame was not turned into a [`ClientMessage`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The payload is not a message of this protocol.
    #[error("frame does not decode: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A well-formed message with an op this build does not know: a newer
    /// client's. Skipped, not fatal.
    #[error("unknown op {op:?}")]
    UnknownOp {
        /// The op named.
        op: String,
        /// Whether the sender waits for an answer (`"reply": true`).
        reply: bool,
    },
}

/// The ops this build knows, as they appear on the wire.
const CLIENT_OPS: &[&str] = &[
    "hello",
    "ignoreInput",
    "ignoreOutput",
    "addInput",
    "addOutput",
    "addValue",
    "disableCache",
    "getEnv",
    "getEnvs",
];

impl ClientMessage {
    /// Decodes one frame's payload. A frame that starts with its `op` is read
    /// straight into that op's fields: serde's path for a tagged enum buffers
    /// the whole object first, which cost about as much as the rest of
    /// serving a report. Either way the same frames are accepted.
    pub fn decode(payload: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_known(payload).map_err(|err| {
            #[derive(Deserialize)]
            struct Op {
                op: String,
                #[serde(default)]
                reply: bool,
            }
            match serde_json::from_slice::<Op>(payload) {
                Ok(Op { op, reply }) if !CLIENT_OPS.contains(&op.as_str()) => {
                    DecodeError::UnknownOp { op, reply }
                }
                _ => DecodeError::Malformed(err),
            }
        })
    }

    fn decode_known(payload: &[u8]) -> Result<Self, serde_json::Error> {
        let path = |payload| serde_json::from_slice::<fields::Path>(payload).map(|f| f.path);
        match leading_op(payload) {
            Some(b"ignoreInput") => path(payload).map(|path| Self::IgnoreInput { path }),
            Some(b"ignoreOutput") => path(payload).map(|path| Self::IgnoreOutput { path }),
            Some(b"addInput") => path(payload).map(|path| Self::AddInput { path }),
            Some(b"addOutput") => path(payload).map(|path| Self::AddOutput { path }),
            Some(b"getEnv") => {
                serde_json::from_slice::<fields::GetEnv>(payload).map(|f| Self::GetEnv {
                    names: f.names,
                    tracked: f.tracked,
                })
            }
            _ => serde_json::from_slice(payload),
        }
    }

    /// The range of versions a hello offers; `None` for any other message or
    /// a hello that names no version.
    pub fn hello_versions(&self) -> Option<(u32, u32)> {
        match self {
            Self::Hello {
                min_version,
                max_version,
                version,
                ..
            } => match (min_version, max_version, version) {
                (Some(min), Some(max), _) => Some((*min, *max)),
                (None, None, Some(version)) => Some((*version, *version)),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A message sent by a runner to a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum ServerMessage {
    /// The handshake was accepted.
    Welcome {
        /// The protocol version chosen for this connection.
        version: u32,
        /// The optional features the server offers (version 2 on; absent, and
        /// empty, for a version-1 client).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        features: Vec<String>,
    },
    /// The handshake was refused; the server closes the connection.
    Refused {
        /// Why, in words.
        reason: String,
    },
    /// The answer to a `getEnv`: one value per requested name, in order.
    Env {
        /// `None` where the runner's env lacks the name.
        values: Vec<Option<String>>,
    },
    /// The answer to a `getEnvs`: every matching variable.
    Envs {
        /// Name → value of every match.
        matches: BTreeMap<String, String>,
    },
    /// The answer to a request whose op this server does not know.
    Unsupported {
        /// The op that was asked for.
        request: String,
    },
}

impl ServerMessage {
    /// Decodes one frame's payload; an `env` answer that starts with its op
    /// skips serde's buffering, as in [`ClientMessage::decode`].
    pub fn decode(payload: &[u8]) -> Result<Self, serde_json::Error> {
        match leading_op(payload) {
            Some(b"env") => serde_json::from_slice::<fields::Env>(payload)
                .map(|f| Self::Env { values: f.values }),
            _ => serde_json::from_slice(payload),
        }
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix names more bytes than the limit allows.
    #[error("frame of {len} bytes exceeds the {} limit", format_size(*.limit))]
    TooLarge {
        /// The length the prefix claims.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The peer closed the connection part-way through a frame.
    #[error("connection closed mid-frame after {got} of {expected} bytes")]
    Truncated {
        /// Bytes of the frame received.
        got: usize,
        /// Bytes the frame needed.
        expected: usize,
    },
    /// The payload is not a message of this protocol.
    #[error("frame does not decode: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The transport failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Why a message could not be turned into a frame.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The encoded message is larger than a frame may be.
    #[error("message of {len} bytes exceeds the {} frame limit", format_size(*.limit))]
    TooLarge {
        /// The encoded length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The message does not serialise (never happens for this protocol's types).
    #[error("message does not encode: {0}")]
    Json(#[from] serde_json::Error),
}

/// Formats a byte count the way error messages show limits ("1 MiB").
pub fn format_size(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Appends `message` as one frame to `out`, refusing payloads over `limit`.
pub fn encode_frame<T: Serialize>(
    message: &T,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    if let Err(err) = serde_json::to_writer(&mut *out, message) {
        out.truncate(start);
        return Err(err.into());
    }
    let len = out.len() - start - HEADER_LEN;
    if len > limit {
        out.truncate(start);
        return Err(EncodeError::TooLarge { len, limit });
    }
    // `len <= limit <= u32::MAX` on every supported limit.
    out[start..start + HEADER_LEN].copy_from_slice(&(len as u32).to_le_bytes());
    Ok(())
}

/// Reads the length prefix at the start of `bytes`, if it is all there.
fn frame_len(bytes: &[u8]) -> Option<usize> {
    let header: [u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
    Some(u32::from_le_bytes(header) as usize)
}

/// Splits frames off the front of a buffer that peers' bytes are read into.
///
/// Both sides use it: the server reads whatever arrived into [`spare`] and
/// takes every complete frame; the client waits for one answer with
/// [`read_frame`]. Reads go straight into the buffer, so an answer usually
/// costs one `read` call and no copy. A length over the limit is reported as
/// soon as the header is in, before any payload is buffered, so a peer cannot
/// make its reader allocate what the header claims.
///
/// [`spare`]: FrameDecoder::spare
/// [`read_frame`]: FrameDecoder::read_frame
#[derive(Debug)]
pub struct FrameDecoder {
    /// Storage; `start..end` holds bytes read but not yet returned as frames.
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    limit: usize,
}

impl FrameDecoder {
    /// Room offered to each read: any answer to a single-name request fits.
    const READ_SIZE: usize = 8 * 1024;

    /// A buffer grown past this for one big frame is dropped once it empties.
    const KEEP_AT_MOST: usize = 16 * Self::READ_SIZE;

    /// A decoder that rejects payloads over `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            end: 0,
            limit,
        }
    }

    /// Changes the largest payload accepted from the next frame on.
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// Where the next read goes: room for the rest of a frame whose header is
    /// in (up to the limit), and at least a few KiB. Follow a read with
    /// [`FrameDecoder::filled`].
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            // A huge answer (a glob over the whole env) need not stay allocated.
            if self.buffer.len() > Self::KEEP_AT_MOST {
                self.buffer = Vec::new();
            }
        }
        let pending = self.end - self.start;
        let frame = frame_len(&self.buffer[self.start..self.end])
            .map_or(HEADER_LEN, |len| HEADER_LEN + len.min(self.limit));
        let room = frame.saturating_sub(pending).max(Self::READ_SIZE);
        if self.buffer.len() - self.end < room && self.start > 0 {
            self.buffer.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = pending;
        }
        if self.buffer.len() - self.end < room {
            self.buffer.resize(self.end + room, 0);
        }
        &mut self.buffer[self.end..]
    }

    /// Counts `n` bytes just read into [`FrameDecoder::spare`].
    pub fn filled(&mut self, n: usize) {
        self.end = (self.end + n).min(self.buffer.len());
    }

    /// Appends bytes received some other way.
    pub fn extend(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let spare = self.spare();
            let n = spare.len().min(bytes.len());
            spare[..n].copy_from_slice(&bytes[..n]);
            self.filled(n);
            bytes = &bytes[n..];
        }
    }

    /// The next complete frame's payload, `Ok(None)` when more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, FrameError> {
        Ok(self.complete_frame()?.map(|len| self.take(len)))
    }

    /// Reads from a blocking `reader` until a whole frame is in, and returns it.
    pub fn read_frame<R: Read>(&mut self, reader: &mut R) -> Result<&[u8], FrameError> {
        loop {
            if let Some(len) = self.complete_frame()? {
                return Ok(self.take(len));
            }
            match reader.read(self.spare()) {
                Ok(0) => return Err(self.truncated()),
                Ok(n) => self.filled(n),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Checks that the peer did not stop part-way through a frame; call at EOF.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.pending() == 0 {
            Ok(())
        } else {
            Err(self.truncated())
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn pending(&self) -> usize {
        self.end - self.start
    }

    /// The payload length of the frame at the front, once all of it is in.
    fn complete_frame(&self) -> Result<Option<usize>, FrameError> {
        let pending = &self.buffer[self.start..self.end];
        let Some(len) = frame_len(pending) else {
            return Ok(None);
        };
        if len > self.limit {
            return Err(FrameError::TooLarge {
                len,
                limit: self.limit,
            });
        }
        Ok((pending.len() >= HEADER_LEN + len).then_some(len))
    }

    /// Returns the front frame's payload of `len` bytes and moves past it.
    fn take(&mut self, len: usize) -> &[u8] {
        let payload = self.start + HEADER_LEN;
        self.start = payload + len;
        &self.buffer[payload..payload + len]
    }

    fn truncated(&self) -> FrameError {
        let pending = &self.buffer[self.start..self.end];
        let expected = frame_len(pending).map_or(HEADER_LEN, |len| HEADER_LEN + len);
        FrameError::Truncated {
            got: pending.len(),
            expected,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(message: &ClientMessage) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(message, MAX_CLIENT_FRAME, &mut out).unwrap();
        out
    }

    #[test]
    fn round_trips_every_client_message() {
        let messages = vec![
            ClientMessage::hello("t".into(), 7),
            ClientMessage::IgnoreInput { path: "/a".into() },
            ClientMessage::IgnoreOutput { path: "/b".into() },
            ClientMessage::AddInput { path: "/c".into() },
            ClientMessage::AddOutput { path: "/d".into() },
            ClientMessage::AddValue {
                name: "n".into(),
                value: "v".into(),
            },
            ClientMessage::DisableCache {
                reason: None,
                caller: None,
                command: None,
            },
            ClientMessage::disable_cache("dev server".into()),
            ClientMessage::DisableCache {
                reason: None,
                caller: Some("vite … _createServer".into()),
                command: Some("node vite.js dev".into()),
            },
            ClientMessage::GetEnv {
                names: vec!["A".into(), "B".into()],
                tracked: true,
            },
            ClientMessage::GetEnvs {
                query: EnvQuery::Glob("VITE_*".into()),
                tracked: false,
            },
            ClientMessage::GetEnvs {
                query: EnvQuery::Prefix("A*".into()),
                tracked: true,
            },
        ];
        let mut decoder = FrameDecoder::new(MAX_CLIENT_FRAME);
        for message in &messages {
            decoder.extend(&frame(message));
        }
        for message in &messages {
            let payload = decoder.next_frame().unwrap().unwrap();
            let decoded: ClientMessage = serde_json::from_slice(payload).unwrap();
            assert_eq!(&decoded, message);
        }
        assert!(decoder.next_frame().unwrap().is_none());
        decoder.finish().unwrap();
    }

    #[test]
    fn decode_accepts_and_rejects_what_serde_does() {
        let payloads: &[&[u8]] = &[
            br#"{"op":"ignoreInput","path":"/a"}"#,
            br#"{"op":"ignoreOutput","path":"/b\u00e9"}"#,
            br#"{"op":"addInput","path":"/c"}"#,
            br#"{"op":"addOutput","path":"/d"}"#,
            br#"{"op":"getEnv","names":["A","B"],"tracked":true}"#,
            br#"{"op":"getEnv","tracked":false,"names":[]}"#,
            br#"{"op":"addValue","name":"n","value":"v"}"#,
            br#"{"path":"/a","op":"ignoreInput"}"#,
            br#"{ "op": "ignoreInput", "path": "/a" }"#,
            br#"{"op":"ignoreInput"}"#,
            br#"{"op":"ignoreInput","path":"/a","extra":1}"#,
            br#"{"op":"ignoreInput","path":"/a","path":"/b"}"#,
            br#"{"op":"ignoreInput","op":"addInput","path":"/a"}"#,
            br#"{"op":"ignoreInput","path":7}"#,
            br#"{"op":"getEnv","names":"A","tracked":true}"#,
            br#"{"op":"getEnv","names":["A"]}"#,
            br#"{"op":"ignore\u0049nput","path":"/a"}"#,
            br#"{"op":"ignoreInput","path":"/a"} trailing"#,
            br#"{"op":"ignoreInput","path":"/a""#,
            br#"{"op":"#,
            b"",
        ];
        for payload in payloads {
            let generic = serde_json::from_slice::<ClientMessage>(payload).ok();
            let fast = ClientMessage::decode(payload).ok();
            assert_eq!(fast, generic, "{}", String::from_utf8_lossy(payload));
        }
        let answers: &[&[u8]] = &[
            br#"{"op":"env","values":["a",null]}"#,
            br#"{"op":"env","values":[]}"#,
            br#"{"op":"env","values":[1]}"#,
            br#"{"op":"env","values":[],"x":1}"#,
            br#"{"op":"env"}"#,
            br#"{"op":"welcome","version":1}"#,
            br#"{"op":"envs","matches":{"A":"1"}}"#,
        ];
        for payload in answers {
            let generic = serde_json::from_slice::<ServerMessage>(payload).ok();
            let fast = ServerMessage::decode(payload).ok();
            assert_eq!(fast, generic, "{}", String::from_utf8_lossy(payload));
        }
    }

    #[test]
    fn disable_cache_fields_are_optional() {
        assert_eq!(
            ClientMessage::decode(br#"{"op":"disableCache"}"#).unwrap(),
            ClientMessage::DisableCache {
                reason: None,
                caller: None,
                command: None
            }
        );
        let frame = frame(&ClientMessage::DisableCache {
            reason: None,
            caller: Some("vite … _createServer".into()),
            command: None,
        });
        assert_eq!(
            &frame[HEADER_LEN..],
            r#"{"op":"disableCache","caller":"vite … _createServer"}"#.as_bytes()
        );
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_utf8("short", 10), "short");
        assert_eq!(truncate_utf8("abcdefghij", 10), "abcdefghij");
        assert_eq!(truncate_utf8("abcdefghijk", 10), "abcdefg…");
        // `é` is two bytes: the cut never splits it.
        let cut = truncate_utf8("ééééé", 7);
        assert_eq!(cut, "éé…");
        assert!(cut.len() <= 7);
    }

    #[test]
    fn decodes_frames_split_at_every_byte() {
        let bytes = frame(&ClientMessage::IgnoreInput {
            path: "/some/where".into(),
        });
        for split in 0..bytes.len() {
            let mut decoder = FrameDecoder::new(MAX_CLIENT_FRAME);
            decoder.extend(&bytes[..split]);
            assert!(decoder.next_frame().unwrap().is_none());
            decoder.extend(&bytes[split..]);
            assert!(decoder.next_frame().unwrap().is_some());
        }
    }

    #[test]
    fn rejects_a_huge_length_before_buffering_it() {
        let mut decoder = FrameDecoder::new(MAX_CLIENT_FRAME);
        decoder.extend(&[0xff, 0xff, 0xff, 0xff]);
        let err = decoder.next_frame().unwrap_err();
        assert_eq!(
            err.to_string(),
            "frame of 4294967295 bytes exceeds the 1 MiB limit"
        );
    }

    #[test]
    fn reports_a_frame_cut_off_at_eof() {
        let bytes = frame(&ClientMessage::AddInput { path: "/x".into() });
        let mut decoder = FrameDecoder::new(MAX_CLIENT_FRAME);
        decoder.extend(&bytes[..bytes.len() - 2]);
        assert!(decoder.next_frame().unwrap().is_none());
        let err = decoder.finish().unwrap_err();
        assert!(matches!(err, FrameError::Truncated { .. }), "{err}");
    }

    #[test]
    fn rejects_json_of_the_wrong_shape() {
        for payload in [
            &br#"{"op":"ignoreInput"}"#[..],
            br#"{"op":"launchMissiles"}"#,
            br#"[1,2,3]"#,
            br#"{"op":"ignoreInput","path":"/a","path":"/b"}"#,
            b"\xff\xfe not json",
        ] {
            assert!(serde_json::from_slice::<ClientMessage>(payload).is_err());
            assert!(ClientMessage::decode(payload).is_err());
        }
        // Evolution: unknown fields are ignored, an unknown op is told apart.
        assert_eq!(
            ClientMessage::decode(br#"{"op":"ignoreInput","path":"/a","extra":1}"#).unwrap(),
            ClientMessage::IgnoreInput { path: "/a".into() }
        );
        assert!(matches!(
            ClientMessage::decode(br#"{"op":"launchMissiles","reply":true}"#),
            Err(DecodeError::UnknownOp { op, reply: true }) if op == "launchMissiles"
        ));
    }

    #[test]
    fn refuses_to_encode_an_oversized_message() {
        let mut out = b"keep".to_vec();
        let err = encode_frame(
            &ClientMessage::AddValue {
                name: "n".into(),
                value: "x".repeat(MAX_CLIENT_FRAME),
            },
            MAX_CLIENT_FRAME,
            &mut out,
        )
        .unwrap_err();
        assert!(matches!(err, EncodeError::TooLarge { .. }));
        assert_eq!(
            out, b"keep",
            "a refused message leaves the buffer untouched"
        );
    }

    #[test]
    fn read_frame_splits_coalesced_and_partial_frames() {
        let mut bytes = frame(&ClientMessage::AddOutput { path: "/o".into() });
        bytes.extend(frame(&ClientMessage::AddInput {
            path: "/i".repeat(5000),
        }));
        // A reader that hands out at most 3 bytes a call, then one that hands out all.
        for chunk in [3, usize::MAX] {
            let mut reader = FrameDecoder::new(MAX_CLIENT_FRAME);
            let mut source = Chunked {
                bytes: &bytes,
                chunk,
            };
            let first = reader.read_frame(&mut source).unwrap().to_vec();
            assert_eq!(first, br#"{"op":"addOutput","path":"/o"}"#);
            let second = reader.read_frame(&mut source).unwrap();
            assert_eq!(second.len(), bytes.len() - first.len() - 2 * HEADER_LEN);
            let err = reader.read_frame(&mut source).unwrap_err();
            assert!(matches!(err, FrameError::Truncated { got: 0, .. }), "{err}");
        }
        let err = FrameDecoder::new(MAX_CLIENT_FRAME)
            .read_frame(&mut &[0xff, 0xff, 0xff, 0xff][..])
            .unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }));
    }

    struct Chunked<'a> {
        bytes: &'a [u8],
        chunk: usize,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.chunk).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    #[test]
    fn reads_frames_from_a_blocking_reader() {
        let bytes = frame(&ClientMessage::AddOutput { path: "/o".into() });
        let mut reader = FrameDecoder::new(MAX_CLIENT_FRAME);
        let payload = reader.read_frame(&mut &bytes[..]).unwrap();
        assert_eq!(payload, &bytes[HEADER_LEN..]);
        let err = FrameDecoder::new(MAX_CLIENT_FRAME)
            .read_frame(&mut &bytes[..3])
            .unwrap_err();
        assert!(matches!(err, FrameError::Truncated { got: 3, .. }));
    }
}
