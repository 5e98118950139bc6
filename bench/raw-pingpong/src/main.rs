//! The limit a sync `getEnv` round trip is measured against: two processes
//! exchanging one request and one answer of the same sizes over a Unix
//! socket, with blocking reads and writes and nothing else. One write and one
//! read per side per round trip.
//!
//! ```text
//! raw-pingpong [--tokio] <iterations> <warmup> <request-bytes> <answer-bytes> <out-file>
//! ```
//!
//! Writes one sample per round trip (µs, f64 little-endian) to `out-file`.
//! With `--tokio` the answering peer is a task on a current-thread tokio
//! runtime on a background thread, the shape of runner-aware's server with
//! none of its work: the floor of that design.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = match args.get(1).map(String::as_str) {
        Some("--serve") => serve(&args[2..]),
        Some("--serve-tokio") => serve_tokio(&args[2..]),
        Some("--tokio") => measure(&args[2..], "--serve-tokio"),
        _ => measure(&args[1..], "--serve"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("raw-pingpong: {err}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn number(args: &[String], index: usize, what: &str) -> Result<usize> {
    let arg = args.get(index).ok_or_else(|| format!("missing {what}"))?;
    Ok(arg
        .parse()
        .map_err(|_| format!("{what} is not a number: {arg}"))?)
}

/// The peer: answers every request of `request` bytes with `answer` bytes.
fn serve(args: &[String]) -> Result<()> {
    let path = args.first().ok_or("missing socket path")?;
    let request = number(args, 1, "request size")?;
    let answer = vec![b'a'; number(args, 2, "answer size")?];
    let mut stream = UnixStream::connect(path)?;
    let mut buf = vec![0u8; request];
    loop {
        let mut filled = 0;
        while filled < request {
            match stream.read(&mut buf[filled..])? {
                0 => return Ok(()),
                n => filled += n,
            }
        }
        stream.write_all(&answer)?;
    }
}

/// The same peer as a tokio task on a current-thread runtime, registered for
/// reads only and writing straight away, as runner-aware's connections are.
#[allow(
    deprecated,
    reason = "AsyncFd owns the stream, so with_interest is sound"
)]
fn serve_tokio(args: &[String]) -> Result<()> {
    use tokio::io::unix::AsyncFd;
    use tokio::io::Interest;

    let path = args.first().ok_or("missing socket path")?;
    let request = number(args, 1, "request size")?;
    let answer = vec![b'a'; number(args, 2, "answer size")?];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    let stream = UnixStream::connect(path)?;
    stream.set_nonblocking(true)?;
    let (done, finished) = std::sync::mpsc::channel();
    let _guard = handle.enter();
    let socket = AsyncFd::with_interest(stream, Interest::READABLE)?;
    handle.spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        let mut pending = 0;
        'serve: loop {
            let Ok(mut guard) = socket.readable().await else {
                break;
            };
            match guard.try_io(|s| s.get_ref().read(&mut buf)) {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    if n < buf.len() {
                        guard.clear_ready();
                    }
                    pending += n;
                }
                Err(_would_block) => continue,
            }
            while pending >= request {
                pending -= request;
                // Answers are tiny and the client reads each before asking again.
                if socket.get_ref().write_all(&answer).is_err() {
                    break 'serve;
                }
            }
        }
        let _ = done.send(());
    });
    let _ = finished.recv();
    Ok(())
}

fn measure(args: &[String], peer_mode: &str) -> Result<()> {
    let iterations = number(args, 0, "iterations")?;
    let warmup = number(args, 1, "warmup")?;
    let request = vec![b'r'; number(args, 2, "request size")?];
    let answer_len = number(args, 3, "answer size")?;
    let out = args.get(4).ok_or("missing output file")?;

    let dir = std::env::temp_dir().join(format!("raw-pingpong-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("s");
    let listener = UnixListener::bind(&path)?;
    let mut peer = Command::new(std::env::current_exe()?)
        .arg(peer_mode)
        .arg(&path)
        .arg(request.len().to_string())
        .arg(answer_len.to_string())
        .spawn()?;
    let (mut stream, _) = listener.accept()?;
    let _ = std::fs::remove_dir_all(&dir);

    let mut answer = vec![0u8; answer_len];
    let mut round_trip = |stream: &mut UnixStream| -> Result<()> {
        stream.write_all(&request)?;
        stream.read_exact(&mut answer)?;
        Ok(())
    };
    for _ in 0..warmup {
        round_trip(&mut stream)?;
    }
    let mut samples = Vec::with_capacity(iterations * 8);
    for _ in 0..iterations {
        let start = Instant::now();
        round_trip(&mut stream)?;
        let micros = start.elapsed().as_secs_f64() * 1e6;
        samples.extend_from_slice(&micros.to_le_bytes());
    }
    drop(stream);
    peer.wait()?;
    std::fs::write(out, samples)?;
    Ok(())
}
