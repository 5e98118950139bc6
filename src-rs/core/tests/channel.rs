//! The server and client talking over a real channel, in one process: a Unix
//! socket, or a named pipe on Windows.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runner_aware::fingerprint::sha256_hex;
#[cfg(windows)]
use runner_aware::protocol::ENV_DIR;
use runner_aware::protocol::{ENV_SOCKET, ENV_TOKEN};
use runner_aware::reports::UncacheableKind;
use runner_aware::{Client, ClientConfig, EnvQuery, EnvValues, Server, ServerOptions};

fn server(env: &[(&str, &str)]) -> Server {
    Server::start(ServerOptions {
        env: Some(
            env.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        ),
        close_timeout: Some(Duration::from_millis(200)),
        ..ServerOptions::default()
    })
    .expect("server starts")
}

/// The client a tool of `server` would make from its environment.
fn config_of(server: &Server) -> ClientConfig {
    ClientConfig {
        socket: server.env()[ENV_SOCKET].clone(),
        token: server.env()[ENV_TOKEN].clone(),
        timeout: Some(Duration::from_secs(5)),
        dir: server.env().get("RUNNER_AWARE_DIR").map(PathBuf::from),
    }
}

fn client_of(server: &Server) -> Client {
    Client::new(Some(config_of(server)))
}

/// An absolute path on this platform, as the client reports it: `/a/b` on
/// Unix, `C:\a\b` on Windows.
fn abs(path: &str) -> String {
    if cfg!(windows) {
        format!("C:\\{}", path.replace('/', "\\"))
    } else {
        format!("/{path}")
    }
}

/// The runner's private directory, where markers go.
fn private_dir(server: &Server) -> PathBuf {
    config_of(server)
        .marker_dir()
        .expect("every server has a private directory")
        .to_owned()
}

fn markers_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("lost-"))
        .map(|e| e.path())
        .collect()
}

#[test]
fn reports_and_answers_round_trip() {
    let server = server(&[("A", "1"), ("VITE_X", "x"), ("VITE_Y", "y")]);
    let client = client_of(&server);
    assert!(client.is_connected());
    client.ignore_input(&abs("cache"));
    client.add_output(&(abs("dist") + std::path::MAIN_SEPARATOR_STR));
    client.add_value("k", "v");
    assert_eq!(client.get_env("A", true).as_deref(), Some("1"));
    assert_eq!(client.get_env("NOPE", true), None);
    let vite = client
        .get_envs(&EnvQuery::Glob("VITE_*".into()), false)
        .unwrap();
    assert_eq!(vite.len(), 2);
    drop(client);
    let reports = server.close_blocking();
    assert_eq!(
        reports.ignored_inputs.iter().collect::<Vec<_>>(),
        [&abs("cache")]
    );
    assert_eq!(reports.outputs.iter().collect::<Vec<_>>(), [&abs("dist")]);
    assert_eq!(reports.values["k"], "v");
    assert!(reports.envs["NOPE"].value.is_none());
    assert!(!reports.env_queries[0].tracked);
    assert_eq!(reports.clients, 1);
    assert!(reports.errors.is_empty(), "{:?}", reports.errors);
    // Env values are digests unless the runner asks for plain text.
    assert_eq!(reports.env_values, EnvValues::Sha256);
    assert_eq!(
        reports.envs["A"].value.as_deref(),
        Some(sha256_hex(b"1").as_str())
    );
    assert_eq!(reports.env_queries[0].matches["VITE_X"], sha256_hex(b"x"));
}

#[test]
fn env_values_are_plain_only_when_asked() {
    let server = Server::start(ServerOptions {
        env: Some(HashMap::from([("A".to_owned(), "1".to_owned())])),
        close_timeout: Some(Duration::from_millis(200)),
        env_values: Some(EnvValues::Plain),
        ..ServerOptions::default()
    })
    .expect("server starts");
    let client = client_of(&server);
    assert_eq!(client.get_env("A", true).as_deref(), Some("1"));
    drop(client);
    let reports = server.close_blocking();
    assert_eq!(reports.env_values, EnvValues::Plain);
    assert_eq!(reports.envs["A"].value.as_deref(), Some("1"));
}

#[test]
fn disable_cache_names_the_caller_and_the_command_line() {
    let server = server(&[]);
    let client = client_of(&server);
    client.disable_cache_from(None, Some("build.mjs main"));
    client.disable_cache(Some("watch mode"));
    drop(client);
    let reports = server.close_blocking();
    let [no_reason, watch] = &reports.not_cacheable[..] else {
        panic!("{:?}", reports.not_cacheable);
    };
    assert_eq!(no_reason.kind, UncacheableKind::DisableCache);
    assert_eq!(no_reason.message, "disableCache() with no reason");
    assert_eq!(no_reason.caller.as_deref(), Some("build.mjs main"));
    assert_eq!(no_reason.pid, Some(std::process::id()));
    // This test binary's own command line.
    let command = no_reason.command.as_deref().unwrap_or_default();
    let program = std::env::args().next().unwrap_or_default();
    assert!(command.starts_with(&program), "{command:?}");
    assert_eq!(watch.message, "watch mode");
    assert_eq!(watch.caller, None);
    assert_eq!(watch.command.as_deref(), Some(command));
}

#[test]
fn dedupes_names_and_batches() {
    let server = server(&[("A", "1"), ("B", "2"), ("C", "3")]);
    let client = client_of(&server);
    for _ in 0..50 {
        assert_eq!(client.get_env("A", true).as_deref(), Some("1"));
    }
    // A and a repeated B are answered locally; B and C go in one request.
    let values = client.get_env_batch(&["A", "B", "C", "B"], true);
    assert_eq!(
        values,
        [Some("1"), Some("2"), Some("3"), Some("2")].map(|v| v.map(str::to_owned))
    );
    client.get_env_batch(&["A", "B", "C"], false);
    let reports = server.close_blocking();
    assert_eq!(reports.env_requests, 2);
}

#[test]
fn a_closed_server_makes_the_client_a_quick_no_op() {
    let server = server(&[("A", "1")]);
    let client = client_of(&server);
    assert!(client.is_connected());
    server.close_blocking();
    let started = Instant::now();
    for i in 0..10_000 {
        client.ignore_input(&abs(&format!("x/{i}")));
        assert_eq!(client.get_env(&format!("N{i}"), true), None);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!client.is_connected());
}

#[test]
fn no_config_means_no_op() {
    let client = Client::new(None);
    assert!(!client.is_connected());
    client.ignore_input(&abs("x"));
    assert_eq!(client.get_env("HOME", true), None);
    assert!(client
        .get_envs(&EnvQuery::Prefix(String::new()), true)
        .unwrap()
        .is_empty());
    assert!(client.get_envs(&EnvQuery::Glob("[".into()), true).is_err());
}

/// Sends `bytes` as a peer that speaks no more, and reads what the server
/// answers until it ends the connection.
#[cfg(unix)]
fn raw_exchange(server: &Server, bytes: &[u8]) -> Vec<u8> {
    let mut stream = std::os::unix::net::UnixStream::connect(&server.env()[ENV_SOCKET]).unwrap();
    stream.write_all(bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.read_to_end(&mut answer);
    answer
}

/// Sends `bytes` and leaves.
#[cfg(unix)]
fn raw_send(server: &Server, bytes: &[u8]) {
    raw_exchange(server, bytes);
}

/// Opens the server's pipe as a peer that knows nothing of the protocol,
/// waiting while every instance is busy (the server is replacing the one the
/// last peer took).
#[cfg(windows)]
fn raw_pipe(server: &Server) -> std::fs::File {
    const ERROR_PIPE_BUSY: i32 = 231;
    let started = Instant::now();
    loop {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&server.env()[ENV_SOCKET])
        {
            Err(err)
                if err.raw_os_error() == Some(ERROR_PIPE_BUSY)
                    && started.elapsed() < Duration::from_secs(5) =>
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            opened => return opened.unwrap(),
        }
    }
}

/// Sends `bytes` as a peer that speaks no more, and reads what the server
/// answers until it ends the connection (a pipe has no half-close: only for
/// exchanges the server ends).
#[cfg(windows)]
fn raw_exchange(server: &Server, bytes: &[u8]) -> Vec<u8> {
    let mut pipe = raw_pipe(server);
    pipe.write_all(bytes).unwrap();
    let mut answer = Vec::new();
    let _ = pipe.read_to_end(&mut answer);
    answer
}

/// Sends `bytes` and leaves.
#[cfg(windows)]
fn raw_send(server: &Server, bytes: &[u8]) {
    raw_pipe(server).write_all(bytes).unwrap();
}

fn frame(payload: &str) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes().to_vec();
    out.extend_from_slice(payload.as_bytes());
    out
}

#[test]
fn hostile_frames_end_only_their_connection() {
    let server = server(&[("SECRET", "s")]);
    let token = server.env()[ENV_TOKEN].clone();
    let hello = frame(&format!(
        r#"{{"op":"hello","version":1,"token":"{token}","pid":9}}"#
    ));
    let answer = raw_exchange(&server, &[0xff, 0xff, 0xff, 0xff]);
    assert!(answer.is_empty());
    let mut huge = hello.clone();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    raw_exchange(&server, &huge);
    let kept = serde_json::to_string(&abs("kept")).unwrap();
    let mut cut = hello.clone();
    cut.extend_from_slice(&frame(&format!(r#"{{"op":"ignoreInput","path":{kept}}}"#)));
    cut.extend_from_slice(&[20, 0, 0, 0, b'{']);
    raw_send(&server, &cut);
    let mut relative = hello.clone();
    relative.extend_from_slice(&frame(r#"{"op":"addInput","path":"relative/p"}"#));
    raw_send(&server, &relative);
    let wrong = raw_exchange(
        &server,
        &frame(r#"{"op":"hello","version":1,"token":"nope","pid":1}"#),
    );
    assert!(!String::from_utf8_lossy(&wrong).contains("\"s\""));
    let client = client_of(&server);
    assert_eq!(client.get_env("SECRET", true).as_deref(), Some("s"));
    let reports = server.close_blocking();
    let messages: Vec<_> = reports.errors.iter().map(|e| e.message.as_str()).collect();
    assert!(messages.contains(&"frame of 4294967295 bytes exceeds the 4 KiB limit"));
    assert!(messages.contains(&"frame of 4294967295 bytes exceeds the 1 MiB limit"));
    assert!(messages.contains(&"connection closed mid-frame after 5 of 24 bytes"));
    assert!(messages.contains(&"path \"relative/p\" is not absolute"));
    assert!(messages.contains(&"handshake refused: wrong token"));
    assert_eq!(
        reports.ignored_inputs.iter().collect::<Vec<_>>(),
        [&abs("kept")]
    );
    assert_eq!(reports.clients, 4);
}

#[test]
fn oversized_reports_disable_the_cache_instead_of_vanishing() {
    let server = server(&[]);
    let client = client_of(&server);
    client.add_value("huge", &"x".repeat(2 << 20));
    client.add_value("small", "ok");
    let reports = server.close_blocking();
    assert!(!reports.cacheable);
    assert!(reports.not_cacheable[0]
        .message
        .contains("exceeds the 1 MiB frame limit"));
    assert_eq!(reports.values.get("small").map(String::as_str), Some("ok"));
}

#[test]
fn close_removes_the_private_directory() {
    let server = server(&[]);
    let dir = private_dir(&server);
    // Unix: the socket's parent, so tools need no variable to find it;
    // Windows: a pipe has no parent, so the runner hands it out.
    #[cfg(unix)]
    {
        assert_eq!(Some(dir.as_path()), server.socket_path().parent());
        assert!(!server.env().contains_key("RUNNER_AWARE_DIR"));
    }
    #[cfg(windows)]
    assert_eq!(server.env()[ENV_DIR], dir.to_string_lossy());
    assert!(dir.is_dir());
    server.close_blocking();
    assert!(!dir.exists());
}

/// A tool that cannot reach its runner leaves a marker in the runner's
/// private directory, and the runner reads it at close: the run is not
/// cacheable though the channel never carried a word.
#[test]
fn a_tool_that_cannot_connect_makes_the_run_not_cacheable() {
    let server = server(&[("A", "1")]);
    let mut config = config_of(&server);
    // An address nothing answers at (on Unix, in a directory with neither
    // a socket nor a FIFO rendezvous), markers still going to the runner.
    config.dir = Some(private_dir(&server));
    config.socket = if cfg!(windows) {
        r"\\.\pipe\runner-aware-nobody-listens-here".to_owned()
    } else {
        private_dir(&server)
            .join("elsewhere")
            .join("s")
            .to_string_lossy()
            .into_owned()
    };
    let client = Client::new(Some(config));
    assert_eq!(client.get_env("A", true), None);
    assert!(!client.is_connected());
    assert_eq!(markers_in(&private_dir(&server)).len(), 1);
    let reports = server.close_blocking();
    assert!(!reports.cacheable);
    assert_eq!(reports.not_cacheable[0].kind, UncacheableKind::Lost);
    assert!(
        reports.not_cacheable[0]
            .message
            .starts_with("a tool could not deliver what it said: cannot connect to"),
        "{:?}",
        reports.not_cacheable
    );
}

/// Env names follow the platform: Windows ignores their case, so a tool
/// asking for `PATH` gets the runner's `Path`, recorded under the runner's
/// spelling; Unix keeps them apart.
#[test]
fn env_names_compare_as_the_platform_does() {
    let server = server(&[("Path", "p"), ("VITE_A", "a")]);
    let client = client_of(&server);
    let path = client.get_env("PATH", true);
    let vite = client
        .get_envs(&EnvQuery::Glob("vite_*".into()), true)
        .unwrap();
    drop(client);
    let reports = server.close_blocking();
    let names: Vec<_> = reports.envs.keys().map(String::as_str).collect();
    if cfg!(windows) {
        assert_eq!(path.as_deref(), Some("p"));
        assert_eq!(names, ["Path"]);
        assert_eq!(vite.keys().collect::<Vec<_>>(), ["VITE_A"]);
    } else {
        assert_eq!(path, None);
        assert_eq!(names, ["PATH"]);
        assert!(vite.is_empty());
    }
}

/// Many tools connecting at once: on Windows each takes a pipe instance the
/// runner must replace in time; a client that finds every instance busy
/// waits for the next one instead of going offline.
#[test]
fn tools_connecting_at_once_all_get_through() {
    const TOOLS: usize = 32;
    let server = server(&[("A", "1")]);
    let config = config_of(&server);
    let start = std::sync::Arc::new(std::sync::Barrier::new(TOOLS));
    let tools: Vec<_> = (0..TOOLS)
        .map(|i| {
            let (config, start) = (config.clone(), start.clone());
            std::thread::spawn(move || {
                let client = Client::new(Some(config));
                start.wait();
                client.add_input(&abs(&format!("in/{i}")));
                client.get_env("A", true)
            })
        })
        .collect();
    for tool in tools {
        assert_eq!(tool.join().unwrap().as_deref(), Some("1"));
    }
    let reports = server.close_blocking();
    assert_eq!(reports.clients, TOOLS as u64);
    assert_eq!(reports.inputs.len(), TOOLS);
    assert!(reports.cacheable, "{:?}", reports.not_cacheable);
}

#[test]
fn an_answer_larger_than_the_socket_buffer_arrives_whole() {
    // Connections wait for writability only when a write finds the socket
    // full; 8 MiB of matches fills it many times over.
    let value = "v".repeat(64 * 1024);
    let names: Vec<String> = (0..128).map(|i| format!("BIG_{i:03}")).collect();
    let env: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), value.as_str())).collect();
    let server = server(&env);
    let client = client_of(&server);
    let matches = client
        .get_envs(&EnvQuery::Prefix("BIG_".into()), false)
        .unwrap();
    assert_eq!(matches.len(), 128);
    assert!(matches.values().all(|v| *v == value));
    assert_eq!(
        client.get_env("BIG_007", false).as_deref(),
        Some(value.as_str())
    );
    drop(client);
    let reports = server.close_blocking();
    assert!(reports.errors.is_empty(), "{:?}", reports.errors);
}

/// A hand-made runner's side of one connection: blocking reads (with a
/// 10 s limit) and writes.
trait Peer: Read + Write {}
impl<T: Read + Write> Peer for T {}

/// A hand-made runner that takes one connection and hands it to `serve` on a
/// thread of its own; returns the config of a tool of it (timeout `timeout`,
/// token `t`) and its private directory.
#[cfg(unix)]
fn fake_runner<T: Send + 'static>(
    timeout: Duration,
    serve: impl FnOnce(&mut dyn Peer) -> T + Send + 'static,
) -> (ClientConfig, tempfile::TempDir, std::thread::JoinHandle<T>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let runner = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        serve(&mut stream)
    });
    let config = ClientConfig {
        socket: path.to_string_lossy().into_owned(),
        token: "t".into(),
        timeout: Some(timeout),
        dir: None,
    };
    (config, dir, runner)
}

/// A tokio named pipe driven by blocking calls.
#[cfg(windows)]
struct BlockingPipe {
    runtime: tokio::runtime::Runtime,
    pipe: tokio::net::windows::named_pipe::NamedPipeServer,
}

#[cfg(windows)]
impl Read for BlockingPipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use tokio::io::AsyncReadExt;
        let pipe = &mut self.pipe;
        self.runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), pipe.read(buf))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
        })
    }
}

#[cfg(windows)]
impl Write for BlockingPipe {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use tokio::io::AsyncWriteExt;
        self.runtime.block_on(self.pipe.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(windows)]
fn fake_runner<T: Send + 'static>(
    timeout: Duration,
    serve: impl FnOnce(&mut dyn Peer) -> T + Send + 'static,
) -> (ClientConfig, tempfile::TempDir, std::thread::JoinHandle<T>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = tempfile::tempdir().unwrap();
    let name = format!(
        r"\\.\pipe\runner-aware-fake-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let pipe = runtime
        .block_on(async {
            tokio::net::windows::named_pipe::ServerOptions::new()
                .first_pipe_instance(true)
                .create(&name)
        })
        .unwrap();
    let runner = std::thread::spawn(move || {
        runtime.block_on(pipe.connect()).unwrap();
        serve(&mut BlockingPipe { runtime, pipe })
    });
    let config = ClientConfig {
        socket: name,
        token: "t".into(),
        timeout: Some(timeout),
        dir: Some(dir.path().to_owned()),
    };
    (config, dir, runner)
}

/// Reads what the tool says until `enough` messages came (or it left),
/// welcoming its hello.
fn converse(stream: &mut dyn Peer, enough: usize) -> Vec<runner_aware::protocol::ClientMessage> {
    use runner_aware::protocol::{
        encode_frame, ClientMessage, FrameDecoder, ServerMessage, MAX_CLIENT_FRAME,
        MAX_SERVER_FRAME, PROTOCOL_VERSION,
    };
    let mut decoder = FrameDecoder::new(MAX_CLIENT_FRAME);
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while messages.len() < enough {
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        decoder.extend(&buf[..n]);
        while let Some(frame) = decoder.next_frame().unwrap() {
            let message: ClientMessage = serde_json::from_slice(frame).unwrap();
            if matches!(message, ClientMessage::Hello { .. }) {
                let mut welcome = Vec::new();
                let answer = ServerMessage::Welcome {
                    version: PROTOCOL_VERSION,
                    features: Vec::new(),
                };
                encode_frame(&answer, MAX_SERVER_FRAME, &mut welcome).unwrap();
                stream.write_all(&welcome).unwrap();
            }
            messages.push(message);
        }
    }
    messages
}

/// A peer that answers the handshake and then never answers a request: the
/// client gives up after one timeout (not two: it does not wait on the
/// stalled connection again to say so), leaves a marker the runner reads at
/// close, and goes offline.
#[test]
fn a_runner_that_stops_answering_is_given_up_on_and_told() {
    use runner_aware::protocol::ClientMessage;

    let timeout = Duration::from_millis(200);
    let (config, dir, runner) = fake_runner(timeout, |stream| converse(stream, 3));
    let client = Client::new(Some(config));
    let started = Instant::now();
    assert_eq!(client.get_env("A", true), None);
    assert!(started.elapsed() >= timeout);
    assert!(started.elapsed() < 2 * timeout, "{:?}", started.elapsed());
    assert!(!client.is_connected());
    let messages = runner.join().unwrap();
    assert!(matches!(messages[1], ClientMessage::GetEnv { .. }));
    assert_eq!(messages.len(), 2, "the marker says it: {messages:?}");
    let markers = markers_in(dir.path());
    assert_eq!(markers.len(), 1);
    let body = std::fs::read_to_string(&markers[0]).unwrap();
    assert!(body.contains("no answer from the runner"), "{body}");
}

/// A peer that answers the handshake and then stops reading: a report that
/// does not fit in the channel's buffer is given up on after the timeout,
/// never blocking the tool for good.
#[test]
fn a_runner_that_stops_reading_is_given_up_on() {
    let timeout = Duration::from_millis(300);
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (config, dir, runner) = fake_runner(timeout, move |stream| {
        converse(stream, 1);
        let _ = released.recv_timeout(Duration::from_secs(30));
    });
    let client = Client::new(Some(config));
    assert!(client.is_connected());
    let started = Instant::now();
    // Under the frame limit, over any socket or pipe buffer.
    client.add_value("big", &"x".repeat(900 << 10));
    assert!(started.elapsed() >= timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!client.is_connected());
    let markers = markers_in(dir.path());
    assert_eq!(markers.len(), 1);
    let body = std::fs::read_to_string(&markers[0]).unwrap();
    assert!(body.contains("cannot send a report"), "{body}");
    release.send(()).unwrap();
    runner.join().unwrap();
}

/// A tool that forks without exec after connecting: parent and child share
/// the socket, and answers to one would reach whichever reads first. The
/// child must notice and reconnect on a connection (and cache) of its own.
#[cfg(unix)]
#[test]
fn a_forked_child_uses_its_own_connection() {
    const CALLS: usize = 2000;
    let mut env: Vec<(String, String)> = Vec::new();
    for i in 0..CALLS {
        env.push((format!("P{i}"), format!("parent-{i}")));
        env.push((format!("C{i}"), format!("child-{i}")));
    }
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = server(&env);
    let client = client_of(&server);
    assert!(client.is_connected());
    // SAFETY: the child only uses the client (its own copy), then `_exit`s.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    let (prefix, expected) = if pid == 0 {
        ("C", "child")
    } else {
        ("P", "parent")
    };
    let wrong = (0..CALLS)
        .filter(|i| {
            client.get_env(&format!("{prefix}{i}"), true) != Some(format!("{expected}-{i}"))
        })
        .count();
    if pid == 0 {
        // SAFETY: ends the forked child without running the parent's atexit
        // handlers or test harness.
        unsafe { libc::_exit(i32::from(wrong != 0)) };
    }
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert_eq!(wrong, 0, "the parent got answers meant for the child");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child got wrong answers (status {status})"
    );
    drop(client);
    let reports = server.close_blocking();
    assert_eq!(reports.clients, 2, "the child connected on its own");
    assert!(reports.cacheable, "{:?}", reports.not_cacheable);
    assert_eq!(reports.envs.len(), 2 * CALLS);
}

/// Tools connecting at once to a runner whose listen backlog is full: a
/// non-blocking connect fails with EAGAIN, and a client that took that for
/// "no runner" went silently offline. Run in a fresh network namespace
/// (`unshare --net`, root) with `net.core.somaxconn` at 8, so 200 clients
/// overflow the backlog many times over.
#[cfg(target_os = "linux")]
#[test]
fn a_full_listen_backlog_loses_no_tool() {
    const CHILD: &str = "RUNNER_AWARE_TEST_BACKLOG_CHILD";
    if std::env::var_os(CHILD).is_none() {
        let exe = std::env::current_exe().unwrap();
        let output = std::process::Command::new("unshare")
            .args(["--net", "sh", "-c"])
            .arg(r#"sysctl -qw net.core.somaxconn=8 && exec "$0" --exact a_full_listen_backlog_loses_no_tool --nocapture"#)
            .arg(exe)
            .env(CHILD, "1")
            .output()
            .expect("unshare runs (util-linux)");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("1 passed"),
            "the namespaced run failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .unwrap()
            .trim(),
        "8"
    );
    const TOOLS: usize = 200;
    let server = server(&[("A", "1")]);
    let (socket, token) = (
        server.env()[ENV_SOCKET].clone(),
        server.env()[ENV_TOKEN].clone(),
    );
    let start = std::sync::Arc::new(std::sync::Barrier::new(TOOLS));
    let tools: Vec<_> = (0..TOOLS)
        .map(|i| {
            let (socket, token, start) = (socket.clone(), token.clone(), start.clone());
            std::thread::spawn(move || {
                let client = Client::new(Some(ClientConfig {
                    socket,
                    token,
                    timeout: Some(Duration::from_secs(20)),
                    dir: None,
                }));
                start.wait();
                client.add_input(&format!("/in/{i}"));
                let answer = client.get_env("A", true);
                // Keep every connection open until all have connected.
                std::thread::sleep(Duration::from_millis(300));
                answer
            })
        })
        .collect();
    let answered = tools
        .into_iter()
        .map(|tool| tool.join().unwrap())
        .filter(|answer| answer.as_deref() == Some("1"))
        .count();
    assert_eq!(answered, TOOLS, "every tool got its answer");
    let reports = server.close_blocking();
    assert_eq!(reports.clients, TOOLS as u64, "{:?}", reports.not_cacheable);
    assert_eq!(reports.inputs.len(), TOOLS);
    assert!(reports.cacheable, "{:?}", reports.not_cacheable);
}

/// The same behaviour over named FIFOs: the tests that go through `Server`
/// and `Client` (not raw sockets) rerun in a child with
/// `RUNNER_AWARE_TRANSPORT=fifo`, where the server serves FIFOs only.
#[cfg(unix)]
#[test]
fn the_same_behaviour_over_fifos() {
    const TESTS: &[&str] = &[
        "reports_and_answers_round_trip",
        "dedupes_names_and_batches",
        "a_closed_server_makes_the_client_a_quick_no_op",
        "oversized_reports_disable_the_cache_instead_of_vanishing",
        "close_removes_the_private_directory",
        "a_tool_that_cannot_connect_makes_the_run_not_cacheable",
        "tools_connecting_at_once_all_get_through",
        "an_answer_larger_than_the_socket_buffer_arrives_whole",
        "a_forked_child_uses_its_own_connection",
        "only_fifos_are_served_when_asked",
    ];
    if std::env::var("RUNNER_AWARE_TRANSPORT").as_deref() == Ok("fifo") {
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(TESTS)
        .args(["--exact", "--test-threads=4"])
        .env("RUNNER_AWARE_TRANSPORT", "fifo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains(&format!("{} passed", TESTS.len())),
        "over FIFOs:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Run by [`the_same_behaviour_over_fifos`]: with the transport forced to
/// FIFOs, the server binds no socket and a tool still connects.
#[cfg(unix)]
#[test]
fn only_fifos_are_served_when_asked() {
    let server = server(&[("A", "1")]);
    let fifo = std::env::var("RUNNER_AWARE_TRANSPORT").as_deref() == Ok("fifo");
    let expected: &[&str] = if fifo { &["fifo"] } else { &["socket", "fifo"] };
    assert_eq!(server.transports(), expected);
    assert_eq!(server.socket_path().exists(), !fifo);
    let client = client_of(&server);
    assert_eq!(client.get_env("A", true).as_deref(), Some("1"));
    drop(client);
    assert_eq!(server.close_blocking().clients, 1);
}

/// Installs, for every thread of this process, a seccomp filter that fails
/// with `EPERM` each `mkdir`, `mknod` (`mkfifo`) and creating `open` whose
/// requested mode grants group or others anything. Under a umask of 000 the
/// requested mode is the mode a file is born with, so with the filter in
/// place nothing can be created open to others, even for an instant.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
fn refuse_creating_anything_open_to_others() {
    use libc::{sock_filter, BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};

    fn stmt(code: u32, k: u32) -> sock_filter {
        sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        }
    }
    fn jump(code: u32, k: u32, jt: usize, jf: usize) -> sock_filter {
        sock_filter {
            code: code as u16,
            jt: jt as u8,
            jf: jf as u8,
            k,
        }
    }
    /// The low 32 bits of argument `n` in `struct seccomp_data`.
    fn arg(n: u32) -> u32 {
        16 + 8 * n
    }
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xC000_003E;
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xC000_00B7;
    // (syscall, the argument with its open flags if any, its mode argument)
    let mut calls: Vec<(libc::c_long, Option<u32>, u32)> = vec![
        (libc::SYS_mkdirat, None, 2),
        (libc::SYS_mknodat, None, 2),
        (libc::SYS_openat, Some(2), 3),
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        (libc::SYS_mkdir, None, 1),
        (libc::SYS_mknod, None, 1),
        (libc::SYS_open, Some(1), 2),
        (libc::SYS_creat, None, 1),
    ]);
    let allow = stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW);
    let deny = stmt(
        BPF_RET | BPF_K,
        libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
    );
    let mut program = vec![
        stmt(BPF_LD | BPF_W | BPF_ABS, 4),
        jump(BPF_JMP | BPF_JEQ | BPF_K, ARCH, 1, 0),
        allow,
    ];
    for (nr, flags, mode) in calls {
        let len = if flags.is_some() { 8 } else { 6 };
        // Not this call: on to the next block.
        program.push(stmt(BPF_LD | BPF_W | BPF_ABS, 0));
        program.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, len - 2));
        if let Some(flags) = flags {
            // An open that creates nothing is allowed.
            program.push(stmt(BPF_LD | BPF_W | BPF_ABS, arg(flags)));
            program.push(jump(BPF_JMP | BPF_JSET | BPF_K, libc::O_CREAT as u32, 0, 3));
        }
        program.push(stmt(BPF_LD | BPF_W | BPF_ABS, arg(mode)));
        program.push(jump(BPF_JMP | BPF_JSET | BPF_K, 0o077, 0, 1));
        program.push(deny);
        program.push(allow);
    }
    program.push(allow);
    let filter = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `filter` points at `program`, alive for both calls; the
    // kernel copies the program.
    unsafe {
        assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
        assert_eq!(
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &filter as *const libc::sock_fprog,
            ),
            0,
            "{}",
            std::io::Error::last_os_error()
        );
    }
}

/// With a umask of 000 (common in containers) the private directory used to
/// be made 0777 and only then chmod-ed to 0700: in between, another local
/// user could bind the socket's name or plant FIFOs in it, get the tools'
/// token and answer `getEnv` itself. Run in a child process (the umask and
/// a seccomp filter are for the whole process) under
/// [`refuse_creating_anything_open_to_others`], over the socket and over
/// FIFOs: the server starts, a tool is served and leaves a marker, and all
/// of it is private; as root, a thread acting as user `nobody` can neither
/// create anything in the directory nor connect.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
#[test]
fn nothing_in_the_private_directory_is_ever_open_to_others() {
    use std::os::unix::fs::PermissionsExt;

    const CHILD: &str = "RUNNER_AWARE_TEST_UMASK_CHILD";
    const NAME: &str = "nothing_in_the_private_directory_is_ever_open_to_others";
    if std::env::var_os(CHILD).is_none() {
        for transport in ["socket", "fifo"] {
            let output = std::process::Command::new(std::env::current_exe().unwrap())
                .args([NAME, "--exact", "--nocapture"])
                .env(CHILD, "1")
                .env("RUNNER_AWARE_TRANSPORT", transport)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && stdout.contains("1 passed"),
                "over {transport}, with umask 000:\n{stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        return;
    }
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    refuse_creating_anything_open_to_others();
    // The filter works: a directory asked for with 0777 is refused.
    let probe = std::env::temp_dir().join(format!("runner-aware-probe-{}", std::process::id()));
    let refused = std::fs::create_dir(&probe).unwrap_err();
    assert_eq!(refused.raw_os_error(), Some(libc::EPERM), "{refused}");

    let server = server(&[("A", "1")]);
    let dir = private_dir(&server);
    let mode = |path: &Path| {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(&dir), 0o700);
    let client = client_of(&server);
    assert_eq!(client.get_env("A", true).as_deref(), Some("1"));
    assert!(runner_aware::client::leave_marker(&dir, "a test's marker"));
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert!(entries.len() >= 2, "{entries:?}");
    for entry in &entries {
        assert_eq!(
            mode(entry) & 0o077,
            0,
            "{} is open to others",
            entry.display()
        );
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let (dir, socket) = (dir.clone(), server.socket_path().to_owned());
        let intruder = std::thread::spawn(move || {
            // This thread only now acts on files as `nobody`, without root's
            // right to override permissions.
            // SAFETY: setfsuid changes this thread's credentials only.
            unsafe { libc::setfsuid(65534) };
            let planted = std::ffi::CString::new(dir.join("planted").to_str().unwrap()).unwrap();
            // SAFETY: a NUL-terminated path.
            let made = unsafe { libc::mkfifo(planted.as_ptr(), 0o600) };
            let mkfifo = (made, std::io::Error::last_os_error().raw_os_error());
            let connect =
                std::os::unix::net::UnixStream::connect(&socket).map_err(|err| err.raw_os_error());
            (mkfifo, connect.err())
        });
        let (mkfifo, connect) = intruder.join().unwrap();
        assert_eq!(mkfifo, (-1, Some(libc::EACCES)));
        assert_eq!(connect, Some(Some(libc::EACCES)));
    }
    drop(client);
    let reports = server.close_blocking();
    assert_eq!(reports.clients, 1);
    assert!(!reports.cacheable, "the marker counts");
}

#[cfg(unix)]
#[test]
fn a_client_path_that_is_a_fifo_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("runner-aware.node");
    let name = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    let started = Instant::now();
    let Err(err) = Server::start(ServerOptions {
        client_path: Some(fifo.clone()),
        ..ServerOptions::default()
    }) else {
        panic!("a FIFO was taken for an addon");
    };
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(err.to_string().contains("not a regular file"), "{err}");
}
