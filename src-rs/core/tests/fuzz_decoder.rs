//! Property tests of the frame decoder: whatever bytes a peer sends, in
//! whatever pieces, the decoder never panics, never buffers past the limit
//! for a frame it rejects, and decodes valid frames exactly.
//!
//! `PROTOCOL_FUZZ_CASES` sets the number of cases (`npm run stress` runs many).

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use runner_aware::protocol::{
    encode_frame, ClientMessage, FrameDecoder, FrameError, HEADER_LEN, MAX_CLIENT_FRAME,
};
use runner_aware::EnvQuery;

const LIMIT: usize = 4096;

fn cases() -> u32 {
    std::env::var("PROTOCOL_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    })
}

/// Feeds `bytes` split at `cuts` and returns (frames, error, pending).
fn feed(bytes: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Option<String>, usize) {
    let mut decoder = FrameDecoder::new(LIMIT);
    let mut frames = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut start = 0;
    for point in points {
        decoder.extend(&bytes[start..point]);
        start = point;
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => {
                    assert!(frame.len() <= LIMIT);
                    frames.push(frame.to_vec());
                }
                Ok(None) => break,
                Err(err) => return (frames, Some(err.to_string()), decoder.pending()),
            }
        }
    }
    let end = decoder.finish().err().map(|e| e.to_string());
    (frames, end, decoder.pending())
}

/// The frames a correct decoder finds in `bytes`, computed independently.
fn reference(bytes: &[u8]) -> (Vec<Vec<u8>>, bool) {
    let mut frames = Vec::new();
    let mut at = 0;
    while bytes.len() - at >= HEADER_LEN {
        let len = u32::from_le_bytes(bytes[at..at + HEADER_LEN].try_into().unwrap()) as usize;
        if len > LIMIT {
            return (frames, true);
        }
        if bytes.len() - at - HEADER_LEN < len {
            return (frames, true);
        }
        frames.push(bytes[at + HEADER_LEN..at + HEADER_LEN + len].to_vec());
        at += HEADER_LEN + len;
    }
    (frames, at != bytes.len())
}

#[test]
fn arbitrary_bytes_in_arbitrary_pieces() {
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..2048),
        prop::collection::vec(any::<usize>(), 0..8),
    );
    runner()
        .run(&strategy, |(bytes, cuts)| {
            let (frames, error, _) = feed(&bytes, &cuts);
            let (expected, expect_error) = reference(&bytes);
            prop_assert_eq!(frames, expected);
            prop_assert_eq!(error.is_some(), expect_error);
            Ok(())
        })
        .unwrap();
}

#[test]
fn small_lengths_with_garbage_payloads() {
    // Random bytes rarely form a small length; build streams that do.
    let frame = (0usize..64).prop_flat_map(|len| prop::collection::vec(any::<u8>(), len..=len));
    let strategy = (
        prop::collection::vec(frame, 0..16),
        prop::collection::vec(any::<u8>(), 0..6),
        prop::collection::vec(any::<usize>(), 0..8),
    );
    runner()
        .run(&strategy, |(payloads, tail, cuts)| {
            let mut bytes = Vec::new();
            for payload in &payloads {
                bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                bytes.extend_from_slice(payload);
            }
            bytes.extend_from_slice(&tail);
            let (frames, error, _) = feed(&bytes, &cuts);
            let (expected, expect_error) = reference(&bytes);
            prop_assert_eq!(&frames, &expected);
            prop_assert_eq!(error.is_some(), expect_error);
            // Decoding a garbage payload is an error, never a panic.
            for frame in frames {
                let _ = serde_json::from_slice::<ClientMessage>(&frame);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn valid_messages_survive_any_split() {
    let path = "[/a-zA-Z0-9 ._\u{e9}\u{1f600}-]{0,40}";
    let message = prop_oneof![
        path.prop_map(|path| ClientMessage::IgnoreInput { path }),
        path.prop_map(|path| ClientMessage::AddOutput { path }),
        (path, path).prop_map(|(name, value)| ClientMessage::AddValue { name, value }),
        (
            prop::option::of(path),
            prop::option::of(path),
            prop::option::of(path)
        )
            .prop_map(|(reason, caller, command)| ClientMessage::DisableCache {
                reason,
                caller,
                command
            }),
        (prop::collection::vec(path, 0..4), any::<bool>())
            .prop_map(|(names, tracked)| ClientMessage::GetEnv { names, tracked }),
        (path, any::<bool>()).prop_map(|(glob, tracked)| ClientMessage::GetEnvs {
            query: EnvQuery::Glob(glob),
            tracked
        }),
    ];
    let strategy = (
        prop::collection::vec(message, 0..12),
        prop::collection::vec(any::<usize>(), 0..8),
    );
    runner()
        .run(&strategy, |(messages, cuts)| {
            let mut bytes = Vec::new();
            for message in &messages {
                encode_frame(message, MAX_CLIENT_FRAME, &mut bytes).unwrap();
            }
            let (frames, error, pending) = feed(&bytes, &cuts);
            prop_assert!(error.is_none());
            prop_assert_eq!(pending, 0);
            let decoded: Vec<ClientMessage> = frames
                .iter()
                .map(|f| serde_json::from_slice(f).unwrap())
                .collect();
            prop_assert_eq!(decoded, messages);
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_oversized_header_is_rejected_without_buffering() {
    let strategy = (
        (LIMIT as u32 + 1)..,
        prop::collection::vec(any::<u8>(), 0..64),
    );
    runner()
        .run(&strategy, |(len, junk)| {
            let mut decoder = FrameDecoder::new(LIMIT);
            decoder.extend(&len.to_le_bytes());
            decoder.extend(&junk);
            let rejected = matches!(decoder.next_frame(), Err(FrameError::TooLarge { .. }));
            prop_assert!(rejected);
            Ok(())
        })
        .unwrap();
}

/// The hand-written fast path of [`ClientMessage::decode`] accepts exactly
/// what serde's derived decoder accepts, and decodes it the same, on valid
/// frames mutated byte by byte (flips, insertions, deletions, truncations).
#[test]
fn the_fast_decoder_agrees_with_serde_on_mutated_frames() {
    let path = "[/a-z\"\\\\{}:,\u{e9}]{0,12}";
    let message = prop_oneof![
        path.prop_map(|path| ClientMessage::IgnoreInput { path }),
        path.prop_map(|path| ClientMessage::IgnoreOutput { path }),
        path.prop_map(|path| ClientMessage::AddInput { path }),
        path.prop_map(|path| ClientMessage::AddOutput { path }),
        (prop::collection::vec(path, 0..3), any::<bool>())
            .prop_map(|(names, tracked)| ClientMessage::GetEnv { names, tracked }),
        (path, path).prop_map(|(name, value)| ClientMessage::AddValue { name, value }),
    ];
    let mutation = (0usize..4, any::<usize>(), any::<u8>());
    let strategy = (message, prop::collection::vec(mutation, 0..4));
    runner()
        .run(&strategy, |(message, mutations)| {
            let mut payload = serde_json::to_vec(&message).unwrap();
            for (kind, at, byte) in mutations {
                let at = at % (payload.len() + 1);
                match kind {
                    0 if at < payload.len() => payload[at] = byte,
                    1 => payload.insert(at, byte),
                    2 if at < payload.len() => {
                        payload.remove(at);
                    }
                    _ => payload.truncate(at),
                }
            }
            let generic = serde_json::from_slice::<ClientMessage>(&payload).ok();
            let fast = ClientMessage::decode(&payload).ok();
            prop_assert_eq!(fast, generic, "{}", String::from_utf8_lossy(&payload));
            Ok(())
        })
        .unwrap();
}
