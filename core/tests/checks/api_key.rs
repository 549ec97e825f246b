//! API keys as presented (`Authorization: Api-Key <key>`) and the records
//! stored under their fingerprints.

use super::problem::assert_client_error;
use edgestream_core::api_key::{check_shape, fingerprint, ApiKeyRecord};

/// Any text: the shape check admits exactly 1-256 visible ASCII characters,
/// and the fingerprint is 64 lowercase hex digits that depend on the whole
/// key (a key and the key with one more character differ).
pub fn check_key(key: &str) {
    let shaped = (1..=256).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    match check_shape(key) {
        Ok(()) => assert!(shaped, "{key:?}"),
        Err(problem) => {
            assert!(!shaped, "{key:?}");
            assert_eq!((problem.status, problem.code), (401, "invalid_token"));
            assert_client_error(&problem);
        }
    }
    let print = fingerprint(key);
    assert_eq!(print.len(), 64);
    assert!(
        print
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
        "{print}"
    );
    assert_ne!(print, fingerprint(&format!("{key}x")));
}

/// Any stored record text: a record that parses survives a round trip, and
/// what it grants is what it says, never a platform grant from an empty
/// tenant.
pub fn check_record(json: &str, now_unix: u64) {
    let Ok(record) = serde_json::from_str::<ApiKeyRecord>(json) else {
        return;
    };
    let again: ApiKeyRecord =
        serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
    assert_eq!(again, record);
    match record.claims(now_unix) {
        Ok(claims) => {
            assert_eq!(claims.tenant, record.tenant);
            assert_ne!(claims.tenant.as_deref(), Some(""));
            assert!(record.expires_at.is_none_or(|at| now_unix < at));
            let scopes: Vec<&str> = record.scope.split_ascii_whitespace().collect();
            assert_eq!(claims.scopes, scopes);
            assert_eq!(claims.subject, Some(format!("api-key:{}", record.name)));
        }
        Err(problem) => {
            assert_eq!(problem.code, "invalid_token");
            let expired = record.expires_at.is_some_and(|at| now_unix >= at);
            assert!(
                expired || record.tenant.as_deref() == Some(""),
                "{record:?}"
            );
        }
    }
}
