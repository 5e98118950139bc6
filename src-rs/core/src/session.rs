//! One connection's protocol state on the runner side, without I/O.
//!
//! The server reads bytes into a [`Session`] and writes out what it answers;
//! everything in between (the handshake, which messages are allowed when,
//! limits, what is recorded and what makes the run not cacheable) is here and
//! is tested with no socket in sight.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::env::{EnvMatcher, EnvQuery, EnvTable};
use crate::paths::validate_reported;
use crate::protocol::{
    encode_frame, negotiate, ClientMessage, DecodeError, FrameDecoder, ServerMessage, FEATURES,
    MAX_CLIENT_FRAME, MAX_HELLO_FRAME, MAX_SERVER_FRAME, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
};
use crate::reports::{Recorder, UncacheableKind};

/// Answers buffered before they are written: a peer that sends many requests
/// at once cannot make the runner hold all their answers in memory.
pub const MAX_PENDING_ANSWERS: usize = 1 << 20;

/// What a session answers from: the run's env and the token a peer must show.
#[derive(Debug)]
pub struct SessionContext<'a> {
    /// The env tools may fetch.
    pub env: &'a EnvTable,
    /// The per-server handshake token.
    pub token: &'a str,
}

/// Where a connection is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// Connected; only a hello (at most [`MAX_HELLO_FRAME`] bytes) is allowed.
    AwaitingHello,
    /// The hello was accepted: reports and requests are allowed.
    Open {
        /// The protocol version chosen.
        version: u32,
    },
    /// The session ended (a refused hello or a protocol violation); nothing
    /// more is read.
    Closed,
}

/// What the server should do after [`Session::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Every complete frame was handled; write the answers, then read more.
    Continue,
    /// Answers reached [`MAX_PENDING_ANSWERS`]: write them, then call
    /// [`Session::process`] again before reading.
    Flush,
    /// The session ended: write the answers (a refusal), then close.
    Close,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    state: SessionState,
    decoder: FrameDecoder,
    answers: Vec<u8>,
    pid: Option<u32>,
    /// Whether the peer showed the token: its failures concern the run.
    trusted: bool,
    /// Whether the connection arrived after the runner began to close.
    late: bool,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A session for a connection that just arrived.
    pub fn new() -> Self {
        Self {
            state: SessionState::AwaitingHello,
            decoder: FrameDecoder::new(MAX_HELLO_FRAME),
            answers: Vec::new(),
            pid: None,
            trusted: false,
            late: false,
        }
    }

    /// A session for a connection that arrived after the runner began to
    /// close: a process of the task outlived its command, and what it says
    /// after the close ends is lost, so a late peer with the token makes the
    /// run not cacheable (what it says before then is still recorded).
    pub fn late() -> Self {
        Self {
            late: true,
            ..Self::new()
        }
    }

    /// Where the session is.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The peer's process id, once its hello told it.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Where the next read goes; follow it with [`Session::filled`].
    pub fn spare(&mut self) -> &mut [u8] {
        self.decoder.spare()
    }

    /// Counts `n` bytes just read into [`Session::spare`].
    pub fn filled(&mut self, n: usize) {
        self.decoder.filled(n);
    }

    /// Appends bytes received some other way.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.decoder.extend(bytes);
    }

    /// The answers to write, in order.
    pub fn answers(&self) -> &[u8] {
        &self.answers
    }

    /// Forgets the answers once they were written.
    pub fn answers_written(&mut self) {
        self.answers.clear();
    }

    /// Handles every complete frame received so far. A panic while handling
    /// one ends the session and makes the run not cacheable; it never takes
    /// the server down.
    pub fn process(&mut self, context: &SessionContext<'_>, recorder: &mut Recorder) -> Next {
        if self.state == SessionState::Closed {
            return Next::Close;
        }
        match catch_unwind(AssertUnwindSafe(|| self.process_frames(context, recorder))) {
            Ok(next) => next,
            Err(_) => {
                recorder.not_cacheable(
                    UncacheableKind::Panic,
                    "the runner failed while handling a tool's message; what followed was not recorded"
                        .to_owned(),
                    self.pid,
                );
                self.state = SessionState::Closed;
                Next::Close
            }
        }
    }

    fn process_frames(&mut self, context: &SessionContext<'_>, recorder: &mut Recorder) -> Next {
        loop {
            if self.answers.len() >= MAX_PENDING_ANSWERS {
                return Next::Flush;
            }
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Next::Continue,
                Err(err) => return self.violation(err.to_string(), recorder),
            };
            let message = match ClientMessage::decode(frame) {
                Ok(message) => message,
                Err(DecodeError::UnknownOp { op, reply }) if self.is_open() => {
                    self.unknown_op(op, reply, recorder);
                    continue;
                }
                Err(err) => return self.violation(err.to_string(), recorder),
            };
            if !self.is_open() {
                match self.handshake(message, context, recorder) {
                    Ok(()) => continue,
                    Err(next) => return next,
                }
            }
            if let Err(message) = self.handle(message, context, recorder) {
                return self.violation(message, recorder);
            }
        }
    }

    fn is_open(&self) -> bool {
        matches!(self.state, SessionState::Open { .. })
    }

    /// Ends the session for a protocol violation. From a peer that showed the
    /// token, what it sent after this point is lost: the run is not cacheable.
    fn violation(&mut self, message: String, recorder: &mut Recorder) -> Next {
        if self.trusted {
            recorder.not_cacheable(
                UncacheableKind::ChannelError,
                format!(
                    "a tool broke the protocol, so what it sent after that was lost: {message}"
                ),
                self.pid,
            );
        }
        recorder.record_error(message, self.pid);
        self.state = SessionState::Closed;
        Next::Close
    }

    fn handshake(
        &mut self,
        message: ClientMessage,
        context: &SessionContext<'_>,
        recorder: &mut Recorder,
    ) -> Result<(), Next> {
        let versions = message.hello_versions();
        let ClientMessage::Hello { token, pid, .. } = message else {
            return Err(self.refuse("the first frame must be a hello".to_owned(), recorder));
        };
        self.pid = Some(pid);
        if !constant_time_eq(token.as_bytes(), context.token.as_bytes()) {
            return Err(self.refuse("wrong token".to_owned(), recorder));
        }
        // The token proves the peer is one of the task's processes.
        self.trusted = true;
        let Some(theirs) = versions else {
            let reason = "the hello names no protocol version".to_owned();
            recorder.not_cacheable(
                UncacheableKind::Version,
                format!("a tool was refused, so nothing it said was recorded: {reason}"),
                self.pid,
            );
            return Err(self.refuse(reason, recorder));
        };
        let Some(version) = negotiate(theirs, (MIN_PROTOCOL_VERSION, PROTOCOL_VERSION)) else {
            let reason = format!(
                "protocol version {} is not supported (this runner speaks {})",
                version_range(theirs),
                version_range((MIN_PROTOCOL_VERSION, PROTOCOL_VERSION))
            );
            recorder.not_cacheable(
                UncacheableKind::Version,
                format!("a tool was refused, so nothing it said was recorded: {reason}"),
                self.pid,
            );
            return Err(self.refuse(reason, recorder));
        };
        self.state = SessionState::Open { version };
        self.decoder.set_limit(MAX_CLIENT_FRAME);
        recorder.count_client();
        if self.late {
            recorder.not_cacheable(
                UncacheableKind::LateClient,
                "a process of the task connected after its command exited (a daemon or a background child); what it says after close() is lost"
                    .to_owned(),
                self.pid,
            );
        }
        let features = if version >= 2 {
            FEATURES.iter().map(|f| (*f).to_owned()).collect()
        } else {
            Vec::new()
        };
        let _ = encode_frame(
            &ServerMessage::Welcome { version, features },
            MAX_SERVER_FRAME,
            &mut self.answers,
        );
        Ok(())
    }

    fn refuse(&mut self, reason: String, recorder: &mut Recorder) -> Next {
        recorder.record_error(format!("handshake refused: {reason}"), self.pid);
        let _ = encode_frame(
            &ServerMessage::Refused { reason },
            MAX_SERVER_FRAME,
            &mut self.answers,
        );
        self.state = SessionState::Closed;
        Next::Close
    }

    /// A newer client's op: skipped, the run not cacheable (what it said is
    /// not in the reports), and answered when the client waits for an answer.
    fn unknown_op(&mut self, op: String, reply: bool, recorder: &mut Recorder) {
        recorder.not_cacheable(
            UncacheableKind::Unsupported,
            format!(
                "a tool sent {op:?}, which this runner does not know; it is not in the reports"
            ),
            self.pid,
        );
        if reply {
            self.respond(&ServerMessage::Unsupported { request: op }, recorder);
        }
    }

    /// Applies one message of an authenticated peer; `Err` is a protocol
    /// violation that ends the session.
    fn handle(
        &mut self,
        message: ClientMessage,
        context: &SessionContext<'_>,
        recorder: &mut Recorder,
    ) -> Result<(), String> {
        let path = |path: String| validate_reported(path).map_err(|err| err.to_string());
        let pid = self.pid;
        match message {
            ClientMessage::Hello { .. } => return Err("unexpected second hello".to_owned()),
            ClientMessage::IgnoreInput { path: p } => recorder.ignore_input(path(p)?, pid),
            ClientMessage::IgnoreOutput { path: p } => recorder.ignore_output(path(p)?, pid),
            ClientMessage::AddInput { path: p } => recorder.add_input(path(p)?, pid),
            ClientMessage::AddOutput { path: p } => recorder.add_output(path(p)?, pid),
            ClientMessage::AddValue { name, value } => {
                if name.is_empty() {
                    return Err("addValue with an empty name".to_owned());
                }
                recorder.add_value(name, value, pid);
            }
            ClientMessage::DisableCache {
                reason,
                caller,
                command,
            } => recorder.disable_cache(reason, caller, command, pid),
            ClientMessage::GetEnv { names, tracked } => {
                recorder.count_env_request();
                let values = names
                    .iter()
                    .map(|name| {
                        let value = context.env.get(name);
                        let tracked = tracked && !context.env.is_untracked(name);
                        // One record per variable where names ignore case.
                        recorder.record_env(&context.env.spelling(name), value, tracked, pid);
                        value.map(str::to_owned)
                    })
                    .collect();
                self.respond(&ServerMessage::Env { values }, recorder);
            }
            ClientMessage::GetEnvs { query, tracked } => {
                recorder.count_env_request();
                let matches = self.serve_query(&query, tracked, context, recorder);
                self.respond(&ServerMessage::Envs { matches }, recorder);
            }
        }
        Ok(())
    }

    fn serve_query(
        &self,
        query: &EnvQuery,
        tracked: bool,
        context: &SessionContext<'_>,
        recorder: &mut Recorder,
    ) -> BTreeMap<String, String> {
        match EnvMatcher::new(query) {
            Ok(matcher) => {
                let matches = context.env.matching(&matcher);
                recorder.record_query(query, tracked, &matches, self.pid);
                matches
            }
            Err(err) => {
                // The client validates globs before sending; one that does
                // not parse here got no answer worth keying on.
                recorder.not_cacheable(
                    UncacheableKind::ChannelError,
                    format!("a tool's env query was not served: {err}"),
                    self.pid,
                );
                recorder.record_error(err.to_string(), self.pid);
                BTreeMap::new()
            }
        }
    }

    fn respond(&mut self, message: &ServerMessage, recorder: &mut Recorder) {
        if let Err(err) = encode_frame(message, MAX_SERVER_FRAME, &mut self.answers) {
            recorder.record_error(format!("cannot answer: {err}"), self.pid);
            // The client still needs an answer to stay in step: an empty one.
            let empty = match message {
                ServerMessage::Env { values } => ServerMessage::Env {
                    values: vec![None; values.len()],
                },
                _ => ServerMessage::Envs {
                    matches: BTreeMap::new(),
                },
            };
            let _ = encode_frame(&empty, MAX_SERVER_FRAME, &mut self.answers);
            recorder.not_cacheable(
                UncacheableKind::Cap,
                format!("an env answer was not sent: {err}"),
                self.pid,
            );
        }
    }

    /// The peer closed its end: everything it sent has been read. A frame it
    /// was part-way through is a violation.
    pub fn finish(&mut self, recorder: &mut Recorder) {
        if self.state == SessionState::Closed {
            return;
        }
        if let Err(err) = self.decoder.finish() {
            self.violation(err.to_string(), recorder);
        }
        self.state = SessionState::Closed;
    }

    /// The peer connected but sent no hello in time.
    pub fn handshake_timed_out(&mut self, timeout_secs: u64, recorder: &mut Recorder) {
        recorder.record_error(
            format!("no handshake within {timeout_secs} s; connection closed"),
            self.pid,
        );
        self.state = SessionState::Closed;
    }

    /// The close grace period ran out while the peer kept its end open.
    pub fn cut_off(&mut self, recorder: &mut Recorder) {
        if self.is_open() {
            recorder.count_still_connected();
            recorder.not_cacheable(
                UncacheableKind::StillConnected,
                "a tool was still connected when the close grace period ended; what it says later is lost"
                    .to_owned(),
                self.pid,
            );
        } else if self.state == SessionState::AwaitingHello {
            recorder.record_error(
                "connection closed by the runner before it completed the handshake".to_owned(),
                self.pid,
            );
        }
        if self.decoder.pending() > 0 {
            let message = format!(
                "{} bytes of an unfinished frame dropped at close",
                self.decoder.pending()
            );
            if self.trusted {
                recorder.not_cacheable(UncacheableKind::ChannelError, message.clone(), self.pid);
            }
            recorder.record_error(message, self.pid);
        }
        self.state = SessionState::Closed;
    }
}

fn version_range((min, max): (u32, u32)) -> String {
    if min == max {
        min.to_string()
    } else {
        format!("{min}-{max}")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::paths::native;
    use crate::protocol::{FrameDecoder, HEADER_LEN};
    use crate::reports::Reports;

    const TOKEN: &str = "secret-token";

    fn table() -> EnvTable {
        let vars = HashMap::from([
            ("NODE_ENV".to_owned(), "production".to_owned()),
            ("VITE_A".to_owned(), "a".to_owned()),
        ]);
        EnvTable::new(vars, vec!["PWD".into()]).unwrap()
    }

    fn frame(message: &ClientMessage) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(message, MAX_CLIENT_FRAME, &mut out).unwrap();
        out
    }

    fn hello(token: &str) -> Vec<u8> {
        frame(&ClientMessage::hello(token.to_owned(), 42))
    }

    /// Feeds `bytes`, processes, and returns what the session answered.
    fn exchange(
        session: &mut Session,
        bytes: &[u8],
        recorder: &mut Recorder,
    ) -> (Next, Vec<ServerMessage>) {
        let env = table();
        let context = SessionContext {
            env: &env,
            token: TOKEN,
        };
        session.receive(bytes);
        let next = session.process(&context, recorder);
        let mut decoder = FrameDecoder::new(MAX_SERVER_FRAME);
        decoder.extend(session.answers());
        session.answers_written();
        let mut answers = Vec::new();
        while let Some(payload) = decoder.next_frame().unwrap() {
            answers.push(ServerMessage::decode(payload).unwrap());
        }
        (next, answers)
    }

    fn reports(recorder: &Recorder) -> Reports {
        recorder.snapshot()
    }

    #[test]
    fn a_hello_with_the_token_opens_the_session() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        let (next, answers) = exchange(&mut session, &hello(TOKEN), &mut recorder);
        assert_eq!(next, Next::Continue);
        assert_eq!(session.state(), SessionState::Open { version: 2 });
        assert!(
            matches!(&answers[..], [ServerMessage::Welcome { version: 2, features }] if features.iter().any(|f| f == "env"))
        );
        assert_eq!(reports(&recorder).clients, 1);
    }

    #[test]
    fn a_version_1_hello_gets_a_version_1_welcome_without_features() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        let old = br#"{"op":"hello","version":1,"token":"secret-token","pid":7}"#;
        let mut bytes = (old.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(old);
        let (_, answers) = exchange(&mut session, &bytes, &mut recorder);
        assert_eq!(
            answers,
            [ServerMessage::Welcome {
                version: 1,
                features: vec![]
            }]
        );
        let mut encoded = Vec::new();
        encode_frame(&answers[0], MAX_SERVER_FRAME, &mut encoded).unwrap();
        assert_eq!(&encoded[HEADER_LEN..], br#"{"op":"welcome","version":1}"#);
    }

    #[test]
    fn a_wrong_token_is_refused_and_is_not_the_runs_concern() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        let (next, answers) = exchange(&mut session, &hello("guess"), &mut recorder);
        assert_eq!(next, Next::Close);
        assert_eq!(
            answers,
            [ServerMessage::Refused {
                reason: "wrong token".into()
            }]
        );
        let reports = reports(&recorder);
        assert!(
            reports.cacheable,
            "a stranger cannot make the run uncacheable"
        );
        assert_eq!(reports.errors[0].message, "handshake refused: wrong token");
        assert_eq!(reports.clients, 0);
    }

    #[test]
    fn a_refused_version_with_the_token_makes_the_run_not_cacheable() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        let bytes = frame(&ClientMessage::Hello {
            min_version: Some(7),
            max_version: Some(9),
            version: None,
            token: TOKEN.into(),
            pid: 5,
        });
        let (next, answers) = exchange(&mut session, &bytes, &mut recorder);
        assert_eq!(next, Next::Close);
        assert!(
            matches!(&answers[..], [ServerMessage::Refused { reason }] if reason == "protocol version 7-9 is not supported (this runner speaks 1-2)")
        );
        let reports = reports(&recorder);
        assert!(!reports.cacheable);
        assert_eq!(reports.not_cacheable[0].kind, UncacheableKind::Version);
        assert_eq!(reports.not_cacheable[0].pid, Some(5));
    }

    #[test]
    fn only_a_hello_sized_frame_is_read_before_the_handshake() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        let (next, _) = exchange(&mut session, &[0, 0, 1, 0], &mut recorder);
        assert_eq!(next, Next::Close);
        let reports = reports(&recorder);
        assert_eq!(
            reports.errors[0].message,
            "frame of 65536 bytes exceeds the 4 KiB limit"
        );
        assert!(reports.cacheable);
    }

    #[test]
    fn reports_and_requests_are_recorded_and_answered_in_order() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        let mut bytes = hello(TOKEN);
        bytes.extend(frame(&ClientMessage::IgnoreInput {
            path: native("/a/./b/"),
        }));
        bytes.extend(frame(&ClientMessage::GetEnv {
            names: vec!["NODE_ENV".into(), "MISSING".into()],
            tracked: true,
        }));
        bytes.extend(frame(&ClientMessage::GetEnvs {
            query: EnvQuery::Glob("VITE_*".into()),
            tracked: false,
        }));
        let (next, answers) = exchange(&mut session, &bytes, &mut recorder);
        assert_eq!(next, Next::Continue);
        assert_eq!(answers.len(), 3);
        assert_eq!(
            answers[1],
            ServerMessage::Env {
                values: vec![Some("production".into()), None]
            }
        );
        assert!(matches!(&answers[2], ServerMessage::Envs { matches } if matches["VITE_A"] == "a"));
        let reports = reports(&recorder);
        assert_eq!(
            reports.ignored_inputs.iter().collect::<Vec<_>>(),
            [&native("/a/b")]
        );
        assert!(reports.envs["NODE_ENV"].tracked);
        assert_eq!(reports.envs["MISSING"].value, None);
        assert!(reports.cacheable);
    }

    #[test]
    fn an_unknown_op_is_skipped_not_fatal() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        let mut bytes = hello(TOKEN);
        let input = serde_json::to_string(&native("/in")).unwrap();
        for payload in [
            r#"{"op":"addTrace","path":"/x"}"#.to_owned(),
            r#"{"op":"frobnicate","reply":true}"#.to_owned(),
            format!(r#"{{"op":"addInput","path":{input},"since":"v3"}}"#),
        ] {
            bytes.extend((payload.len() as u32).to_le_bytes());
            bytes.extend_from_slice(payload.as_bytes());
        }
        let (next, answers) = exchange(&mut session, &bytes, &mut recorder);
        assert_eq!(next, Next::Continue);
        assert_eq!(
            answers[1],
            ServerMessage::Unsupported {
                request: "frobnicate".into()
            }
        );
        let reports = reports(&recorder);
        assert_eq!(reports.inputs.iter().collect::<Vec<_>>(), [&native("/in")]);
        assert!(!reports.cacheable);
        assert!(reports
            .not_cacheable
            .iter()
            .all(|r| r.kind == UncacheableKind::Unsupported));
        assert_eq!(reports.not_cacheable.len(), 2);
    }

    #[test]
    fn a_violation_after_the_handshake_makes_the_run_not_cacheable() {
        for bad in [
            &br#"{"op":"addInput"}"#[..],
            br#"{"op":"addInput","path":"relative"}"#,
            br#"not json"#,
            br#"{"op":"hello","minVersion":1,"maxVersion":2,"token":"secret-token","pid":1}"#,
        ] {
            let mut session = Session::new();
            let mut recorder = Recorder::default();
            let mut bytes = hello(TOKEN);
            bytes.extend((bad.len() as u32).to_le_bytes());
            bytes.extend_from_slice(bad);
            bytes.extend(frame(&ClientMessage::AddInput {
                path: "/after".into(),
            }));
            let (next, _) = exchange(&mut session, &bytes, &mut recorder);
            assert_eq!(next, Next::Close);
            assert_eq!(session.state(), SessionState::Closed);
            let reports = reports(&recorder);
            assert!(
                reports.inputs.is_empty(),
                "nothing after a violation is read"
            );
            assert!(!reports.cacheable, "{}", String::from_utf8_lossy(bad));
            assert_eq!(reports.not_cacheable[0].kind, UncacheableKind::ChannelError);
            assert_eq!(reports.not_cacheable[0].pid, Some(42));
        }
    }

    #[test]
    fn a_frame_cut_off_at_eof_is_a_violation_of_a_trusted_peer() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        let mut bytes = hello(TOKEN);
        let report = frame(&ClientMessage::AddOutput { path: "/o".into() });
        bytes.extend(&report[..report.len() - 3]);
        exchange(&mut session, &bytes, &mut recorder);
        session.finish(&mut recorder);
        let reports = reports(&recorder);
        assert!(!reports.cacheable);
        assert!(reports.errors[0]
            .message
            .starts_with("connection closed mid-frame"));
    }

    #[test]
    fn cut_off_at_close_counts_a_client_still_connected() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        exchange(&mut session, &hello(TOKEN), &mut recorder);
        session.cut_off(&mut recorder);
        let reports = reports(&recorder);
        assert_eq!(reports.clients_still_connected, 1);
        assert_eq!(
            reports.not_cacheable[0].kind,
            UncacheableKind::StillConnected
        );
        // A stranger still waiting for its hello concerns nobody.
        let mut stranger = Session::new();
        let mut recorder = Recorder::default();
        stranger.cut_off(&mut recorder);
        assert!(recorder.snapshot().cacheable);
    }

    #[test]
    fn many_requests_at_once_are_answered_in_bounded_batches() {
        let mut session = Session::new();
        let mut recorder = Recorder::default();
        let mut bytes = hello(TOKEN);
        let request = frame(&ClientMessage::GetEnvs {
            query: EnvQuery::Glob("*".into()),
            tracked: false,
        });
        let per_answer = 64;
        let count = MAX_PENDING_ANSWERS / per_answer + 10;
        for _ in 0..count {
            bytes.extend(&request);
        }
        let env = table();
        let context = SessionContext {
            env: &env,
            token: TOKEN,
        };
        session.receive(&bytes);
        let mut flushes = 0;
        loop {
            let next = session.process(&context, &mut recorder);
            assert!(session.answers().len() <= MAX_PENDING_ANSWERS + 1024);
            session.answers_written();
            match next {
                Next::Flush => flushes += 1,
                Next::Continue => break,
                Next::Close => panic!("closed"),
            }
        }
        assert!(flushes >= 1);
        assert_eq!(recorder.snapshot().env_requests, count as u64);
    }
}
