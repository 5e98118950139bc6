//! The server and client talking over a real socket, in one process.
#![cfg(unix)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use runner_aware::protocol::{ENV_SOCKET, ENV_TOKEN};
use runner_aware::{Client, ClientConfig, EnvQuery, Server, ServerOptions};

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

fn client_of(server: &Server) -> Client {
    Client::new(Some(ClientConfig {
        socket: server.env()[ENV_SOCKET].clone(),
        token: server.env()[ENV_TOKEN].clone(),
        timeout: Some(Duration::from_secs(5)),
    }))
}

#[test]
fn reports_and_answers_round_trip() {
    let server = server(&[("A", "1"), ("VITE_X", "x"), ("VITE_Y", "y")]);
    let client = client_of(&server);
    assert!(client.is_connected());
    client.ignore_input("/cache");
    client.add_output("/dist/");
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
        ["/cache"]
    );
    assert_eq!(reports.outputs.iter().collect::<Vec<_>>(), ["/dist"]);
    assert_eq!(reports.values["k"], "v");
    assert!(reports.envs["NOPE"].value.is_none());
    assert!(!reports.env_queries[0].tracked);
    assert_eq!(reports.clients, 1);
    assert!(reports.errors.is_empty(), "{:?}", reports.errors);
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
        client.ignore_input(&format!("/x/{i}"));
        assert_eq!(client.get_env(&format!("N{i}"), true), None);
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!client.is_connected());
}

#[test]
fn no_config_means_no_op() {
    let client = Client::new(None);
    assert!(!client.is_connected());
    client.ignore_input("/x");
    assert_eq!(client.get_env("HOME", true), None);
    assert!(client
        .get_envs(&EnvQuery::Prefix(String::new()), true)
        .unwrap()
        .is_empty());
    assert!(client.get_envs(&EnvQuery::Glob("[".into()), true).is_err());
}

fn raw(server: &Server, bytes: &[u8]) -> Vec<u8> {
    let mut stream = UnixStream::connect(&server.env()[ENV_SOCKET]).unwrap();
    stream.write_all(bytes).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.read_to_end(&mut answer);
    answer
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
    let answer = raw(&server, &[0xff, 0xff, 0xff, 0xff]);
    assert!(answer.is_empty());
    let mut huge = hello.clone();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    raw(&server, &huge);
    let mut cut = hello.clone();
    cut.extend_from_slice(&frame(r#"{"op":"ignoreInput","path":"/kept"}"#));
    cut.extend_from_slice(&[20, 0, 0, 0, b'{']);
    raw(&server, &cut);
    let mut relative = hello.clone();
    relative.extend_from_slice(&frame(r#"{"op":"addInput","path":"relative/p"}"#));
    raw(&server, &relative);
    let wrong = raw(
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
    assert_eq!(reports.ignored_inputs.iter().collect::<Vec<_>>(), ["/kept"]);
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
fn close_removes_the_socket_directory() {
    let server = server(&[]);
    let dir = server.socket_path().parent().unwrap().to_owned();
    assert!(dir.exists());
    server.close_blocking();
    assert!(!dir.exists());
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

/// A peer that answers the handshake and then never answers a request: the
/// client gives up after its timeout, says so to the runner, and goes offline.
#[test]
fn a_runner_that_stops_answering_is_given_up_on_and_told() {
    use runner_aware::protocol::{
        encode_frame, ClientMessage, FrameDecoder, ServerMessage, MAX_CLIENT_FRAME,
        MAX_SERVER_FRAME, PROTOCOL_VERSION,
    };

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let runner = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut decoder = FrameDecoder::new(MAX_CLIENT_FRAME);
        let mut messages = Vec::new();
        let mut buf = [0u8; 4096];
        while messages.len() < 3 {
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
    });
    let client = Client::new(Some(ClientConfig {
        socket: path.to_string_lossy().into_owned(),
        token: "t".into(),
        timeout: Some(Duration::from_millis(200)),
    }));
    let started = Instant::now();
    assert_eq!(client.get_env("A", true), None);
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!client.is_connected());
    let messages = runner.join().unwrap();
    assert!(matches!(messages[1], ClientMessage::GetEnv { .. }));
    assert!(
        matches!(&messages[2], ClientMessage::DisableCache { reason: Some(reason) }
            if reason.starts_with("a tool gave up on the runner: no answer from the runner")),
        "{:?}",
        messages[2]
    );
    // The runner is also told through a marker in its directory, which it
    // reads even when the connection is what failed.
    let markers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("lost-"))
        .collect();
    assert_eq!(markers.len(), 1);
    let body = std::fs::read_to_string(markers[0].path()).unwrap();
    assert!(body.contains("no answer from the runner"), "{body}");
}

/// A tool that forks without exec after connecting: parent and child share
/// the socket, and answers to one would reach whichever reads first. The
/// child must notice and reconnect on a connection (and cache) of its own.
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
