//! Artifact signing as Turborepo does it: the `x-artifact-tag` header is
//! HMAC-SHA256, keyed by the team's `TURBO_REMOTE_CACHE_SIGNATURE_KEY`, over
//! the JSON `{"hash":…,"teamId":…}` followed by the artifact's bytes, in
//! base64. A tag is checked in constant time; padded and unpadded base64
//! are both accepted, since Turborepo releases have written either.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], hash: &str, team: &str, body: &[u8]) -> HmacSha256 {
    #[derive(serde::Serialize)]
    struct Metadata<'a> {
        hash: &'a str,
        #[serde(rename = "teamId")]
        team_id: &'a str,
    }
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    let metadata = serde_json::to_vec(&Metadata {
        hash,
        team_id: team,
    })
    .unwrap_or_default();
    mac.update(&metadata);
    mac.update(body);
    mac
}

/// The `x-artifact-tag` of `body` stored under `hash` for `team`.
pub fn artifact_tag(key: &[u8], hash: &str, team: &str, body: &[u8]) -> String {
    STANDARD.encode(mac(key, hash, team, body).finalize().into_bytes())
}

/// Whether `tag` is the `x-artifact-tag` of `body` under `hash` for `team`.
pub fn verify_artifact_tag(key: &[u8], hash: &str, team: &str, body: &[u8], tag: &str) -> bool {
    let tag = tag.trim();
    let Ok(bytes) = STANDARD
        .decode(tag)
        .or_else(|_| STANDARD_NO_PAD.decode(tag))
    else {
        return false;
    };
    mac(key, hash, team, body).verify_slice(&bytes).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed with `openssl dgst -sha256 -hmac my-secret-key-env` over
    /// `{"hash":"the-artifact-hash","teamId":"team_someid"}the artifact body as bytes`
    /// (the inputs of Turborepo's own signature test), base64.
    const TURBO_TAG: &str = include_str!("../../tests/fixtures/turbo-artifact-tag.txt");

    #[test]
    fn agrees_with_turborepo_and_refuses_any_change() {
        let (key, hash, team, body) = (
            b"my-secret-key-env".as_slice(),
            "the-artifact-hash",
            "team_someid",
            b"the artifact body as bytes".as_slice(),
        );
        let tag = artifact_tag(key, hash, team, body);
        assert_eq!(tag, TURBO_TAG.trim());
        assert!(verify_artifact_tag(key, hash, team, body, &tag));
        assert!(verify_artifact_tag(
            key,
            hash,
            team,
            body,
            tag.trim_end_matches('=')
        ));
        assert!(!verify_artifact_tag(b"other", hash, team, body, &tag));
        assert!(!verify_artifact_tag(key, "other-hash", team, body, &tag));
        assert!(!verify_artifact_tag(key, hash, "team_other", body, &tag));
        assert!(!verify_artifact_tag(
            key,
            hash,
            team,
            b"the artifact body as byteS",
            &tag
        ));
        assert!(!verify_artifact_tag(key, hash, team, body, "not base64!"));
        assert!(!verify_artifact_tag(key, hash, team, body, ""));
    }
}
