//! JWT verification.
//!
//! Each configured key carries the algorithms it may verify (see
//! [`keys`](crate::keys)), and a token's `alg` and `kid` headers only select
//! among those keys; they never decide how a key is used. That is what keeps
//! `alg: none` and algorithm confusion (an RSA public key used as an HMAC
//! secret) out: a token can only ask for an algorithm some key was configured
//! for, and only that key's material is used for it.
//!
//! Time is a parameter (`now_unix`) because the runtime's clock lives outside
//! this crate, and because tests then need no clock.

use crate::keys::{self, Algorithm, VerificationKey};
use crate::problem::Problem;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use std::fmt;

/// Longest token looked at. Larger inputs are rejected before any decoding,
/// which bounds the work an unauthenticated request can cause.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// What the verifier needs to know. The secret comes from `JWT_SECRET`, the
/// keys from `JWT_PUBLIC_KEY` or a JWKS; the rest from
/// [`Settings`](crate::config::Settings).
#[derive(Clone)]
pub struct VerifierConfig {
    /// An HMAC secret; when not empty it adds a key that allows HS256,
    /// HS384 and HS512 (see [`VerificationKey::hmac`]).
    pub secret: Vec<u8>,
    /// Further keys, each with its own allow-list.
    pub keys: Vec<VerificationKey>,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub tenant_claim: String,
    pub leeway_seconds: u64,
}

impl Default for VerifierConfig {
    /// No secret and no keys (which verifies nothing), tenant from
    /// `tenant_id`, 30 s leeway.
    fn default() -> Self {
        VerifierConfig {
            secret: Vec::new(),
            keys: Vec::new(),
            issuer: None,
            audience: None,
            tenant_claim: "tenant_id".to_owned(),
            leeway_seconds: 30,
        }
    }
}

/// Keeps the secret out of logs ([`VerificationKey`]'s Debug shows no
/// material either).
impl fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifierConfig")
            .field("secret", &format_args!("[{} bytes]", self.secret.len()))
            .field("keys", &self.keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("tenant_claim", &self.tenant_claim)
            .field("leeway_seconds", &self.leeway_seconds)
            .finish()
    }
}

/// Verifies tokens against the configured keys and claim rules.
pub struct JwtVerifier {
    keys: Vec<VerificationKey>,
    issuer: Option<String>,
    audience: Option<String>,
    tenant_claim: String,
    leeway_seconds: u64,
}

/// What the rest of the relay learns from a verified token.
#[derive(Clone, Debug, PartialEq)]
pub struct Claims {
    /// `sub`, else SimpleJWT's `user_id` (an integer is rendered as a string).
    pub subject: Option<String>,
    /// The claim named by `tenant_claim`.
    pub tenant: Option<String>,
    /// The space-separated `scope` claim, split.
    pub scopes: Vec<String>,
    /// `exp` in whole seconds (a fractional `exp` is rounded down).
    pub expires_at: u64,
    pub jti: Option<String>,
}

impl Claims {
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// Why a token was refused. Messages are static so that no token text can
/// reach a response or a log through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnsupportedAlgorithm,
    BadSignature,
    MissingExpiry,
    Expired,
    NotYetValid,
    IssuedInFuture,
    WrongIssuer,
    WrongAudience,
    NotAccessToken,
    /// The token's `kid` names no configured key (and no key configured
    /// without a `kid` verifies it). The Worker refreshes a JWKS once on
    /// this, within its rate limit, and verifies again.
    UnknownKey,
    /// A claim, or the `crit` or `kid` header, of a type or value this
    /// relay refuses.
    BadClaim(&'static str),
}

impl TokenError {
    pub fn message(&self) -> &'static str {
        match self {
            TokenError::Malformed => "token is malformed",
            TokenError::UnsupportedAlgorithm => "token algorithm is not accepted",
            TokenError::BadSignature => "token signature is invalid",
            TokenError::MissingExpiry => "token has no exp claim",
            TokenError::Expired => "token has expired",
            TokenError::NotYetValid => "token is not valid yet (nbf)",
            TokenError::IssuedInFuture => "token was issued in the future (iat)",
            TokenError::WrongIssuer => "token issuer is not accepted",
            TokenError::WrongAudience => "token audience is not accepted",
            TokenError::NotAccessToken => "token is not an access token",
            TokenError::UnknownKey => "token key id (kid) is not known",
            TokenError::BadClaim(name) => match *name {
                "exp" => "token exp claim must be a number",
                "nbf" => "token nbf claim must be a number",
                "iat" => "token iat claim must be a number",
                "sub" => "token sub claim must be a string",
                "user_id" => "token user_id claim must be a string or an integer",
                "tenant" => "token tenant claim must be a non-empty string",
                "scope" => "token scope claim must be a string",
                "jti" => "token jti claim must be a string",
                "crit" => "token header has a crit parameter, which is not supported",
                "kid" => "token header kid must be a string",
                _ => "token has a claim of the wrong type",
            },
        }
    }
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TokenError {}

impl From<TokenError> for Problem {
    fn from(err: TokenError) -> Self {
        Problem::invalid_token(err.message())
    }
}

impl JwtVerifier {
    /// The configured keys, then the HMAC secret's key. An empty secret adds
    /// no key at all, so a verifier without keys refuses every token rather
    /// than accepting ones signed with an empty key. A secret that
    /// [`VerificationKey::hmac`] refuses (a PEM or JWK pasted as the secret)
    /// adds no key either: HMAC tokens are then refused, and the Worker's
    /// configuration check reports the reason.
    pub fn new(cfg: VerifierConfig) -> Self {
        let mut keys = cfg.keys;
        if let Ok(key) = VerificationKey::hmac(&cfg.secret) {
            keys.push(key);
        }
        JwtVerifier {
            keys,
            issuer: cfg.issuer,
            audience: cfg.audience,
            tenant_claim: cfg.tenant_claim,
            leeway_seconds: cfg.leeway_seconds,
        }
    }

    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// Checks shape, header, signature, then claims, in that order: nothing
    /// in the payload is looked at before the signature holds.
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
        self.verify_with(token, &[], now_unix)
    }

    /// [`verify`](Self::verify) with `extra_keys` (a JWKS fetched at run
    /// time and cached by the Worker) considered after the configured ones,
    /// so the cache can change without rebuilding the verifier.
    ///
    /// Key selection: the `alg` header must name an [`Algorithm`] exactly.
    /// With a `kid` header, the keys of that `kid` are the candidates; when
    /// no key has it, keys configured without a `kid` are tried (issuers set
    /// a `kid` that a pasted PEM key does not carry), and if none of them
    /// verifies the token the answer is [`TokenError::UnknownKey`]. Without
    /// `kid`, every key is a candidate. Of the candidates, only keys whose
    /// allow-list has the algorithm are used; if there are none the answer
    /// is [`TokenError::UnsupportedAlgorithm`], and if none verifies,
    /// [`TokenError::BadSignature`].
    pub fn verify_with(
        &self,
        token: &str,
        extra_keys: &[VerificationKey],
        now_unix: u64,
    ) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let mut segments = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) = (
            segments.next(),
            segments.next(),
            segments.next(),
            segments.next(),
        ) else {
            return Err(TokenError::Malformed);
        };

        let header = decode_object(header_b64)?;
        if header.contains_key("crit") {
            return Err(TokenError::BadClaim("crit"));
        }
        let algorithm = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_name)
            .ok_or(TokenError::UnsupportedAlgorithm)?;
        // `jku`, `x5u`, `jwk` and `x5c` are never followed or trusted: keys
        // come only from configuration.
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(TokenError::BadClaim("kid")),
        };

        let all = || self.keys.iter().chain(extra_keys);
        let (candidates, unknown_kid): (Vec<&VerificationKey>, bool) = match kid {
            Some(kid) if all().any(|key| key.kid() == Some(kid)) => {
                (all().filter(|key| key.kid() == Some(kid)).collect(), false)
            }
            Some(_) => (all().filter(|key| key.kid().is_none()).collect(), true),
            None => (all().collect(), false),
        };
        let usable: Vec<&VerificationKey> = candidates
            .into_iter()
            .filter(|key| key.allows(algorithm))
            .collect();
        if usable.is_empty() {
            return Err(if unknown_kid {
                TokenError::UnknownKey
            } else {
                TokenError::UnsupportedAlgorithm
            });
        }

        let signature = decode_segment(signature_b64)?;
        let signing_input = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        if !usable
            .iter()
            .any(|key| key.verify(algorithm, signing_input, &signature))
        {
            return Err(if unknown_kid {
                TokenError::UnknownKey
            } else {
                TokenError::BadSignature
            });
        }

        self.check_claims(&decode_object(payload_b64)?, now_unix)
    }

    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        now_unix: u64,
    ) -> Result<Claims, TokenError> {
        let now = now_unix as f64;
        let leeway = self.leeway_seconds as f64;

        let exp = numeric_date(claims, "exp")?.ok_or(TokenError::MissingExpiry)?;
        if now > exp + leeway {
            return Err(TokenError::Expired);
        }
        if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > now + leeway) {
            return Err(TokenError::NotYetValid);
        }
        if numeric_date(claims, "iat")?.is_some_and(|iat| iat > now + leeway) {
            return Err(TokenError::IssuedInFuture);
        }
        if let Some(issuer) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
                return Err(TokenError::WrongIssuer);
            }
        }
        if let Some(audience) = &self.audience {
            if !audience_contains(claims.get("aud"), audience) {
                return Err(TokenError::WrongAudience);
            }
        }
        if let Some(token_type) = claims.get("token_type") {
            if token_type.as_str() != Some("access") {
                return Err(TokenError::NotAccessToken);
            }
        }

        Ok(Claims {
            subject: subject(claims)?,
            tenant: match claims.get(&self.tenant_claim) {
                None => None,
                Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
                Some(_) => return Err(TokenError::BadClaim("tenant")),
            },
            scopes: match claims.get("scope") {
                None => Vec::new(),
                Some(Value::String(s)) => s.split_ascii_whitespace().map(str::to_owned).collect(),
                Some(_) => return Err(TokenError::BadClaim("scope")),
            },
            // `as` saturates: a negative exp is 0, a huge one u64::MAX.
            expires_at: exp.floor() as u64,
            jti: optional_string(claims, "jti")?,
        })
    }
}

/// Base64url without padding, strictly: padding, the standard alphabet and
/// non-zero trailing bits are all refused, so each token has one spelling.
fn decode_segment(segment: &str) -> Result<Vec<u8>, TokenError> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, TokenError> {
    match serde_json::from_slice(&decode_segment(segment)?) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed),
    }
}

/// A NumericDate (RFC 7519 section 2): any JSON number, integer or not.
fn numeric_date(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<f64>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or(TokenError::BadClaim(name)),
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}

fn optional_string(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<String>, TokenError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(TokenError::BadClaim(name)),
    }
}

/// `sub`, or SimpleJWT's `user_id`, which is an integer for integer keys.
fn subject(claims: &Map<String, Value>) -> Result<Option<String>, TokenError> {
    if let Some(sub) = optional_string(claims, "sub")? {
        return Ok(Some(sub));
    }
    match claims.get("user_id") {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
        Some(_) => Err(TokenError::BadClaim("user_id")),
    }
}

/// `aud` is a string or an array of strings (RFC 7519 section 4.1.3).
fn audience_contains(aud: Option<&Value>, audience: &str) -> bool {
    match aud {
        Some(Value::String(a)) => a == audience,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
        _ => false,
    }
}

/// Signs claims (a JSON object) with HS256. For tests, the dev tooling and
/// the bridge, which mint short-lived publisher tokens.
pub fn sign_hs256(claims: &Value, secret: &[u8]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let signature = keys::hmac_sign(secret, signing_input.as_bytes());
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const SECRET: &[u8] = b"test-secret-that-is-long-enough-for-hs256";
    const TENANT: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";

    fn verifier() -> JwtVerifier {
        JwtVerifier::new(VerifierConfig {
            secret: SECRET.to_vec(),
            ..VerifierConfig::default()
        })
    }

    fn claims() -> Value {
        json!({
            "sub": "user-1",
            "tenant_id": TENANT,
            "scope": "events:subscribe events:publish",
            "exp": NOW + 300,
            "iat": NOW,
            "jti": "abc",
            "token_type": "access",
        })
    }

    fn with(changes: Value) -> Value {
        let mut c = claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn check(claims: &Value) -> Result<Claims, TokenError> {
        verifier().verify(&sign_hs256(claims, SECRET), NOW)
    }

    /// A token with an arbitrary header, signed with `secret` over its own
    /// header and payload segments.
    fn token_with_header(header: &str, claims: &Value, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = keys::hmac_sign(secret, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    #[test]
    fn valid_token() {
        let c = check(&claims()).unwrap();
        assert_eq!(
            c,
            Claims {
                subject: Some("user-1".into()),
                tenant: Some(TENANT.into()),
                scopes: vec!["events:subscribe".into(), "events:publish".into()],
                expires_at: NOW + 300,
                jti: Some("abc".into()),
            }
        );
        assert!(c.has_scope("events:publish"));
        assert!(!c.has_scope("events"));
    }

    #[test]
    fn minimal_token_needs_only_exp() {
        let c = check(&json!({"exp": NOW + 1})).unwrap();
        assert_eq!(
            (c.subject, c.tenant, c.scopes.len(), c.jti),
            (None, None, 0, None)
        );
    }

    #[test]
    fn expiry_honours_leeway_to_the_second() {
        assert!(check(&with(json!({"exp": NOW - 30}))).is_ok());
        assert_eq!(
            check(&with(json!({"exp": NOW - 31}))),
            Err(TokenError::Expired)
        );
        let strict = JwtVerifier::new(VerifierConfig {
            secret: SECRET.to_vec(),
            leeway_seconds: 0,
            ..VerifierConfig::default()
        });
        let token = sign_hs256(&with(json!({"exp": NOW - 1})), SECRET);
        assert_eq!(strict.verify(&token, NOW), Err(TokenError::Expired));
        assert!(strict
            .verify(&sign_hs256(&with(json!({"exp": NOW})), SECRET), NOW)
            .is_ok());
    }

    #[test]
    fn exp_may_be_fractional_but_must_be_a_number() {
        let c = check(&with(json!({"exp": (NOW + 10) as f64 + 0.75}))).unwrap();
        assert_eq!(c.expires_at, NOW + 10);
        assert_eq!(
            check(&with(json!({"exp": (NOW - 31) as f64 + 0.5}))),
            Err(TokenError::Expired)
        );
        for bad in [
            json!("9999999999"),
            json!(true),
            json!([NOW + 10]),
            json!({}),
        ] {
            assert_eq!(
                check(&with(json!({ "exp": bad }))),
                Err(TokenError::BadClaim("exp"))
            );
        }
        assert_eq!(check(&with(json!({"exp": -1}))), Err(TokenError::Expired));
    }

    #[test]
    fn missing_exp_is_refused() {
        assert_eq!(
            check(&with(json!({"exp": null}))),
            Err(TokenError::MissingExpiry)
        );
        let token = token_with_header(
            r#"{"alg":"HS256"}"#,
            &json!({"exp": Value::Null, "sub": "x"}),
            SECRET,
        );
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(TokenError::BadClaim("exp"))
        );
    }

    #[test]
    fn future_nbf_and_iat() {
        assert!(check(&with(json!({"nbf": NOW + 30, "iat": NOW + 30}))).is_ok());
        assert_eq!(
            check(&with(json!({"nbf": NOW + 31}))),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            check(&with(json!({"iat": NOW + 31}))),
            Err(TokenError::IssuedInFuture)
        );
        assert_eq!(
            check(&with(json!({"nbf": "0"}))),
            Err(TokenError::BadClaim("nbf"))
        );
        assert_eq!(
            check(&with(json!({"iat": "0"}))),
            Err(TokenError::BadClaim("iat"))
        );
    }

    #[test]
    fn wrong_key_is_a_bad_signature() {
        let token = sign_hs256(&claims(), b"another-secret");
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn empty_secret_verifies_nothing() {
        let empty = JwtVerifier::new(VerifierConfig::default());
        for secret in [&b""[..], SECRET] {
            let token = sign_hs256(&claims(), secret);
            assert!(empty.verify(&token, NOW).is_err());
        }
        assert_eq!(
            empty.verify(&sign_hs256(&claims(), b""), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn alg_none_is_refused_with_and_without_signature() {
        for header in [
            r#"{"alg":"none"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"NONE"}"#,
            r#"{"alg":"none","typ":"JWT"}"#,
        ] {
            let signed = token_with_header(header, &claims(), SECRET);
            assert_eq!(
                verifier().verify(&signed, NOW),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
            let unsigned = format!("{}.", signed.rsplit_once('.').unwrap().0);
            assert_eq!(
                verifier().verify(&unsigned, NOW),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn other_algorithms_are_refused_even_when_hmac_signed() {
        // The secret allows HS384 and HS512, so an HS256 MAC under those
        // names is a wrong signature, not a wrong algorithm.
        for header in [r#"{"alg":"HS384"}"#, r#"{"alg":"HS512"}"#] {
            let token = token_with_header(header, &claims(), SECRET);
            assert_eq!(
                verifier().verify(&token, NOW),
                Err(TokenError::BadSignature),
                "{header}"
            );
        }
        for header in [
            r#"{"alg":"RS256"}"#,
            r#"{"alg":"ES256"}"#,
            r#"{"alg":"EdDSA"}"#,
            r#"{"alg":"hs256"}"#,
            r#"{"alg":"HS256 "}"#,
            r#"{"alg":["HS256"]}"#,
            r#"{"alg":null}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            let token = token_with_header(header, &claims(), SECRET);
            assert_eq!(
                verifier().verify(&token, NOW),
                Err(TokenError::UnsupportedAlgorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn crit_header_is_refused() {
        let token = token_with_header(
            r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
            &claims(),
            SECRET,
        );
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(TokenError::BadClaim("crit"))
        );
    }

    #[test]
    fn header_must_be_an_object() {
        for header in ["[]", "\"HS256\"", "null", "{", ""] {
            let token = token_with_header(header, &claims(), SECRET);
            assert_eq!(
                verifier().verify(&token, NOW),
                Err(TokenError::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn tampered_payload_is_a_bad_signature() {
        let token = sign_hs256(&claims(), SECRET);
        let parts: Vec<&str> = token.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(with(json!({"tenant_id": "11111111-2222-4333-8444-555555555555"})).to_string());
        let tampered = format!("{}.{}.{}", parts[0], forged, parts[2]);
        assert_eq!(
            verifier().verify(&tampered, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn payload_must_be_an_object_even_when_signed() {
        for payload in [json!([1]), json!("x"), json!(null)] {
            let token = sign_hs256(&payload, SECRET);
            assert_eq!(verifier().verify(&token, NOW), Err(TokenError::Malformed));
        }
    }

    #[test]
    fn segment_counts() {
        let token = sign_hs256(&claims(), SECRET);
        let (head, _) = token.rsplit_once('.').unwrap();
        assert_eq!(verifier().verify(head, NOW), Err(TokenError::Malformed));
        assert_eq!(
            verifier().verify(&format!("{token}.x"), NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verifier().verify(&format!("{token}."), NOW),
            Err(TokenError::Malformed)
        );
        for s in ["", ".", "..", "...", "a.b", "a.b.c"] {
            assert_eq!(verifier().verify(s, NOW), Err(TokenError::Malformed), "{s}");
        }
    }

    #[test]
    fn base64_must_be_url_safe_unpadded_and_canonical() {
        let token = sign_hs256(&claims(), SECRET);
        let parts: Vec<&str> = token.split('.').collect();
        let rejoin = |h: &str, p: &str, s: &str| format!("{h}.{p}.{s}");

        // Non-url alphabet in any segment.
        let std_sig = parts[2].replace('-', "+").replace('_', "/");
        if std_sig != parts[2] {
            assert_eq!(
                verifier().verify(&rejoin(parts[0], parts[1], &std_sig), NOW),
                Err(TokenError::Malformed)
            );
        }
        assert_eq!(
            verifier().verify(&rejoin(parts[0], parts[1], "ab+/"), NOW),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verifier().verify(&rejoin(&format!("{}*", parts[0]), parts[1], parts[2]), NOW),
            Err(TokenError::Malformed)
        );

        // Padding, on the 32-byte HMAC (43 characters, one '=' would pad it).
        assert_eq!(parts[2].len(), 43);
        assert_eq!(
            verifier().verify(&rejoin(parts[0], parts[1], &format!("{}=", parts[2])), NOW),
            Err(TokenError::Malformed)
        );

        // The same signature with non-zero trailing bits: the last of 43
        // characters carries 4 bits of data and 2 bits that must be zero.
        const ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = ALPHABET.find(&parts[2][42..]).unwrap();
        assert_eq!(last & 0b11, 0);
        let twisted = format!("{}{}", &parts[2][..42], &ALPHABET[last + 1..last + 2]);
        assert_eq!(
            verifier().verify(&rejoin(parts[0], parts[1], &twisted), NOW),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn huge_token_is_refused_before_decoding() {
        let padding = "a".repeat(MAX_TOKEN_BYTES);
        let token = sign_hs256(&with(json!({ "pad": padding })), SECRET);
        assert!(token.len() > MAX_TOKEN_BYTES);
        assert_eq!(verifier().verify(&token, NOW), Err(TokenError::Malformed));
        assert_eq!(
            verifier().verify(&"a".repeat(100_000), NOW),
            Err(TokenError::Malformed)
        );
    }

    fn configured(issuer: Option<&str>, audience: Option<&str>) -> JwtVerifier {
        JwtVerifier::new(VerifierConfig {
            secret: SECRET.to_vec(),
            issuer: issuer.map(str::to_owned),
            audience: audience.map(str::to_owned),
            ..VerifierConfig::default()
        })
    }

    #[test]
    fn issuer_is_enforced_when_configured() {
        let v = configured(Some("https://api.example"), None);
        let ok = sign_hs256(&with(json!({"iss": "https://api.example"})), SECRET);
        assert!(v.verify(&ok, NOW).is_ok());
        for bad in [
            json!("https://evil.example"),
            json!("https://api.example/"),
            json!(["https://api.example"]),
            Value::Null,
        ] {
            let token = sign_hs256(&with(json!({ "iss": bad })), SECRET);
            assert_eq!(v.verify(&token, NOW), Err(TokenError::WrongIssuer), "{bad}");
        }
        // Unconfigured: iss is not looked at.
        assert!(check(&with(json!({"iss": 42}))).is_ok());
    }

    #[test]
    fn audience_is_enforced_when_configured() {
        let v = configured(None, Some("edgestream"));
        for good in [json!("edgestream"), json!(["other", "edgestream"])] {
            let token = sign_hs256(&with(json!({ "aud": good })), SECRET);
            assert!(v.verify(&token, NOW).is_ok(), "{good}");
        }
        for bad in [
            json!("other"),
            json!(["other"]),
            json!([]),
            json!("Edgestream"),
            json!({"edgestream": 1}),
            Value::Null,
        ] {
            let token = sign_hs256(&with(json!({ "aud": bad })), SECRET);
            assert_eq!(
                v.verify(&token, NOW),
                Err(TokenError::WrongAudience),
                "{bad}"
            );
        }
    }

    #[test]
    fn refresh_tokens_are_refused() {
        assert_eq!(
            check(&with(json!({"token_type": "refresh"}))),
            Err(TokenError::NotAccessToken)
        );
        assert_eq!(
            check(&with(json!({"token_type": "Access"}))),
            Err(TokenError::NotAccessToken)
        );
        assert_eq!(
            check(&with(json!({"token_type": 1}))),
            Err(TokenError::NotAccessToken)
        );
        assert!(check(&with(json!({"token_type": null}))).is_ok());
    }

    #[test]
    fn tenant_claim() {
        assert_eq!(
            check(&with(json!({"tenant_id": null}))).unwrap().tenant,
            None
        );
        for bad in [
            json!(42),
            json!({"id": TENANT}),
            json!([TENANT]),
            json!(""),
            json!(true),
        ] {
            assert_eq!(
                check(&with(json!({ "tenant_id": bad }))),
                Err(TokenError::BadClaim("tenant")),
                "{bad}"
            );
        }
    }

    #[test]
    fn explicit_null_tenant_is_refused_not_read_as_platform_token() {
        let token = token_with_header(
            r#"{"alg":"HS256"}"#,
            &json!({"exp": NOW + 10, "tenant_id": Value::Null}),
            SECRET,
        );
        assert_eq!(
            verifier().verify(&token, NOW),
            Err(TokenError::BadClaim("tenant"))
        );
    }

    #[test]
    fn tenant_claim_name_is_configurable() {
        let v = JwtVerifier::new(VerifierConfig {
            secret: SECRET.to_vec(),
            tenant_claim: "org".into(),
            ..VerifierConfig::default()
        });
        let token = sign_hs256(&with(json!({"org": "t-1"})), SECRET);
        assert_eq!(
            v.verify(&token, NOW).unwrap().tenant.as_deref(),
            Some("t-1")
        );
    }

    #[test]
    fn subject_from_sub_or_user_id() {
        assert_eq!(
            check(&with(json!({"sub": null, "user_id": 42})))
                .unwrap()
                .subject
                .as_deref(),
            Some("42")
        );
        assert_eq!(
            check(&with(json!({"sub": null, "user_id": "u-7"})))
                .unwrap()
                .subject
                .as_deref(),
            Some("u-7")
        );
        assert_eq!(
            check(&with(json!({"user_id": 42})))
                .unwrap()
                .subject
                .as_deref(),
            Some("user-1")
        );
        assert_eq!(
            check(&with(json!({"sub": null, "user_id": 1.5}))),
            Err(TokenError::BadClaim("user_id"))
        );
        assert_eq!(
            check(&with(json!({"sub": 42}))),
            Err(TokenError::BadClaim("sub"))
        );
    }

    #[test]
    fn scope_and_jti_must_be_strings() {
        assert_eq!(
            check(&with(json!({"scope": ["events:publish"]}))),
            Err(TokenError::BadClaim("scope"))
        );
        assert_eq!(
            check(&with(json!({"jti": 7}))),
            Err(TokenError::BadClaim("jti"))
        );
        assert_eq!(
            check(&with(json!({"scope": "  a   b "}))).unwrap().scopes,
            ["a", "b"]
        );
    }

    #[test]
    fn errors_become_invalid_token_without_token_text() {
        let token = sign_hs256(&with(json!({"exp": NOW - 100})), SECRET);
        let err = verifier().verify(&token, NOW).unwrap_err();
        let p: Problem = err.into();
        assert_eq!(
            (p.status, p.code, p.detail.as_str()),
            (401, "invalid_token", "token has expired")
        );
        assert!(!p.to_json().contains(&token[..20]));
    }

    #[test]
    fn every_error_has_its_own_message() {
        let all = [
            TokenError::Malformed,
            TokenError::UnsupportedAlgorithm,
            TokenError::BadSignature,
            TokenError::MissingExpiry,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::IssuedInFuture,
            TokenError::WrongIssuer,
            TokenError::WrongAudience,
            TokenError::NotAccessToken,
            TokenError::UnknownKey,
            TokenError::BadClaim("exp"),
            TokenError::BadClaim("kid"),
            TokenError::BadClaim("tenant"),
            TokenError::BadClaim("crit"),
        ];
        let messages: std::collections::HashSet<_> = all.iter().map(TokenError::message).collect();
        assert_eq!(messages.len(), all.len());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let cfg = VerifierConfig {
            secret: b"hunter2".to_vec(),
            ..VerifierConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("[7 bytes]"),
            "{shown}"
        );
    }

    #[test]
    fn fixed_vectors_from_outside_this_crate() {
        // Signed with Python's hmac module, in the shape SimpleJWT issues:
        // integer user_id, tenant claim, token_type, far-future exp.
        let simplejwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjo0MiwidGVuYW50X2lkIjoiMGI5YzJmNGUtOGExZC00YzNiLTllN2YtNmE1ZDRjM2IyYTE5IiwiZXhwIjo0MTAyNDQ0ODAwLCJ0b2tlbl90eXBlIjoiYWNjZXNzIiwianRpIjoiZDFmMCJ9.IOU-rk591ZfXeHRgf4mqwZT8fKPW5OBsmC48ryT-964";
        let v = JwtVerifier::new(VerifierConfig {
            secret: b"django-insecure-secret".to_vec(),
            ..VerifierConfig::default()
        });
        let c = v.verify(simplejwt, NOW).unwrap();
        assert_eq!(
            (c.subject.as_deref(), c.tenant.as_deref(), c.expires_at),
            (Some("42"), Some(TENANT), 4_102_444_800)
        );

        // The jwt.io example: the signature holds, and it is refused only
        // because it has no exp.
        let jwt_io = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let v = JwtVerifier::new(VerifierConfig {
            secret: b"your-256-bit-secret".to_vec(),
            ..VerifierConfig::default()
        });
        assert_eq!(v.verify(jwt_io, NOW), Err(TokenError::MissingExpiry));
        assert_eq!(
            verifier().verify(jwt_io, NOW),
            Err(TokenError::BadSignature)
        );
    }
}

/// Asymmetric keys, key selection, and a corpus of forged and malformed
/// tokens. Keys and third-party tokens come from `tests/fixtures`.
#[cfg(test)]
mod key_selection_tests {
    use super::*;
    use crate::keys::testing::{jose_hmac_secret, jose_token, pem, pem_key, public_jwk, token};
    use crate::keys::KeyKind;
    use serde_json::json;

    const NOW: u64 = 1_700_000_000;
    const TENANT: &str = "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19";
    const SECRET: &[u8] = b"test-secret-that-is-long-enough-for-hs256";

    fn claims() -> Value {
        json!({
            "sub": "user-1",
            "tenant_id": TENANT,
            "exp": NOW + 300,
            "iat": NOW,
            "token_type": "access",
        })
    }

    fn with(changes: Value) -> Value {
        let mut c = claims();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    fn jwks_keys(names: &[&str]) -> Vec<VerificationKey> {
        let keys: Vec<Value> = names
            .iter()
            .map(|name| {
                let mut jwk = public_jwk(name);
                jwk["kid"] = json!(name);
                jwk
            })
            .collect();
        VerificationKey::from_jwks(&json!({ "keys": keys }).to_string()).unwrap()
    }

    fn verifier_with(secret: &[u8], keys: Vec<VerificationKey>) -> JwtVerifier {
        JwtVerifier::new(VerifierConfig {
            secret: secret.to_vec(),
            keys,
            ..VerifierConfig::default()
        })
    }

    /// HMAC secret plus the `a` keys of every type from a JWKS, with kids.
    fn mixed() -> JwtVerifier {
        verifier_with(SECRET, jwks_keys(&["rsa-a", "p256-a", "ed25519-a"]))
    }

    /// The `a` keys from PEM, without kids, and no secret.
    fn pem_only() -> JwtVerifier {
        verifier_with(
            b"",
            vec![pem_key("rsa-a"), pem_key("p256-a"), pem_key("ed25519-a")],
        )
    }

    fn hmac_only(secret: &[u8]) -> JwtVerifier {
        verifier_with(secret, Vec::new())
    }

    fn hmac_token(header: &str, claims: &Value, secret: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = keys::hmac_sign(secret, input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn replace_signature(token: &str, signature: &[u8]) -> String {
        let (input, _) = token.rsplit_once('.').unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn signature_of(token: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(token.rsplit_once('.').unwrap().1)
            .unwrap()
    }

    #[test]
    fn third_party_tokens_of_every_algorithm_verify() {
        let jose_secret = jose_hmac_secret();
        let with_kids = verifier_with(&jose_secret, jwks_keys(&["rsa-a", "p256-a", "ed25519-a"]));
        let without_kids = verifier_with(
            &jose_secret,
            vec![pem_key("rsa-a"), pem_key("p256-a"), pem_key("ed25519-a")],
        );
        for name in [
            "HS256",
            "HS384",
            "HS512",
            "RS256",
            "PS256",
            "ES256",
            "EdDSA",
            "RS256+kid",
            "PS256+kid",
            "ES256+kid",
            "EdDSA+kid",
        ] {
            let token = jose_token(name);
            for verifier in [&with_kids, &without_kids] {
                let c = verifier
                    .verify(&token, NOW)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(
                    (c.subject.as_deref(), c.tenant.as_deref(), c.jti.as_deref()),
                    (Some("user-1"), Some(TENANT), Some("jose-1")),
                    "{name}"
                );
                assert_eq!(c.expires_at, 4_102_444_800);
            }
        }
    }

    #[test]
    fn pkcs1_pem_verifies_the_same_tokens() {
        let v = verifier_with(b"", vec![pem_key("rsa-a.pkcs1")]);
        for name in ["RS256", "PS256", "RS256+kid"] {
            assert!(v.verify(&jose_token(name), NOW).is_ok(), "{name}");
        }
    }

    #[test]
    fn simplejwt_access_tokens_are_accepted_and_refresh_tokens_refused() {
        let v = verifier_with(&jose_hmac_secret(), vec![pem_key("rsa-a")]);
        for alg in ["HS256", "RS256"] {
            let c = v
                .verify(&jose_token(&format!("simplejwt-{alg}-access")), NOW)
                .unwrap();
            assert_eq!(
                (c.subject.as_deref(), c.tenant.as_deref(), c.jti.as_deref()),
                (
                    Some("42"),
                    Some(TENANT),
                    Some("6f1c0c7a3b4e4d2f9a8b7c6d5e4f3a2b")
                ),
                "{alg}"
            );
            assert_eq!(
                v.verify(&jose_token(&format!("simplejwt-{alg}-refresh")), NOW),
                Err(TokenError::NotAccessToken),
                "{alg}"
            );
        }
    }

    #[test]
    fn tokens_signed_here_verify_with_every_key_type() {
        for (alg, key) in [
            ("RS256", "rsa-a"),
            ("ES256", "p256-a"),
            ("EdDSA", "ed25519-a"),
        ] {
            let t = token(
                &format!(r#"{{"alg":"{alg}","kid":"{key}"}}"#),
                &claims(),
                key,
            );
            assert!(mixed().verify(&t, NOW).is_ok(), "{alg}");
            assert!(pem_only().verify(&t, NOW).is_ok(), "{alg}");
        }
    }

    #[test]
    fn claims_rules_apply_to_asymmetric_tokens_too() {
        let v = mixed();
        let rs = |c: &Value| token(r#"{"alg":"RS256"}"#, c, "rsa-a");
        assert_eq!(
            v.verify(&rs(&with(json!({"exp": NOW - 31}))), NOW),
            Err(TokenError::Expired)
        );
        assert!(v.verify(&rs(&with(json!({"exp": NOW - 30}))), NOW).is_ok());
        assert_eq!(
            v.verify(&rs(&with(json!({"token_type": "refresh"}))), NOW),
            Err(TokenError::NotAccessToken)
        );
        assert_eq!(
            v.verify(&rs(&with(json!({"tenant_id": 7}))), NOW),
            Err(TokenError::BadClaim("tenant"))
        );
    }

    #[test]
    fn kid_selects_only_the_keys_named() {
        // Both RSA keys configured; the kid says rsa-a, the token is rsa-b's.
        let v = verifier_with(
            b"",
            vec![
                pem_key("rsa-a").with_kid("a"),
                pem_key("rsa-b").with_kid("b"),
            ],
        );
        let by_b = |kid: &str| {
            token(
                &format!(r#"{{"alg":"RS256","kid":"{kid}"}}"#),
                &claims(),
                "rsa-b",
            )
        };
        assert!(v.verify(&by_b("b"), NOW).is_ok());
        assert_eq!(v.verify(&by_b("a"), NOW), Err(TokenError::BadSignature));
        // Without kid every key that allows the algorithm is tried.
        assert!(v
            .verify(&token(r#"{"alg":"RS256"}"#, &claims(), "rsa-b"), NOW)
            .is_ok());
    }

    #[test]
    fn unknown_kid_falls_back_to_unnamed_keys_then_reports_unknown_key() {
        // A PEM key carries no kid, but issuers put one in every token.
        let t = token(
            r#"{"alg":"ES256","kid":"issuer-2024"}"#,
            &claims(),
            "p256-a",
        );
        assert!(pem_only().verify(&t, NOW).is_ok());
        // With named keys only, an unknown kid is reported as such so that
        // the Worker can refresh its JWKS.
        let named = verifier_with(b"", jwks_keys(&["rsa-a", "p256-a"]));
        assert_eq!(named.verify(&t, NOW), Err(TokenError::UnknownKey));
        // Unnamed keys that do not verify it: still unknown, not "bad".
        let forged = token(
            r#"{"alg":"ES256","kid":"issuer-2024"}"#,
            &claims(),
            "p256-b",
        );
        assert_eq!(pem_only().verify(&forged, NOW), Err(TokenError::UnknownKey));
    }

    #[test]
    fn fetched_keys_are_passed_per_call() {
        let v = verifier_with(SECRET, Vec::new());
        let t = token(
            r#"{"alg":"EdDSA","kid":"ed25519-a"}"#,
            &claims(),
            "ed25519-a",
        );
        assert_eq!(v.verify(&t, NOW), Err(TokenError::UnknownKey));
        let fetched = jwks_keys(&["ed25519-a"]);
        assert!(v.verify_with(&t, &fetched, NOW).is_ok());
        // The configured secret still works alongside.
        assert!(v
            .verify_with(&sign_hs256(&claims(), SECRET), &fetched, NOW)
            .is_ok());
    }

    #[test]
    fn a_public_key_pasted_as_the_secret_adds_no_hmac_key() {
        let v = hmac_only(pem("rsa-a").as_bytes());
        assert!(v.keys().is_empty());
        assert_eq!(
            v.verify(&jose_token("confusion-HS256-rsa-a-pem"), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn verifier_keys_and_debug() {
        let v = mixed();
        let kinds: Vec<KeyKind> = v.keys().iter().map(VerificationKey::kind).collect();
        assert_eq!(
            kinds,
            [KeyKind::Rsa, KeyKind::P256, KeyKind::Ed25519, KeyKind::Hmac]
        );
        let cfg = VerifierConfig {
            secret: b"hunter2".to_vec(),
            keys: vec![pem_key("rsa-a").with_kid("k")],
            ..VerifierConfig::default()
        };
        let shown = format!("{cfg:?}");
        assert!(
            !shown.contains("hunter2") && shown.contains("RSA 2048-bit"),
            "{shown}"
        );
    }

    #[test]
    fn ed25519_signature_malleated_with_s_plus_l_is_refused() {
        let t = token(r#"{"alg":"EdDSA"}"#, &claims(), "ed25519-a");
        let mut sig = signature_of(&t);
        // L, the group order, little-endian.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (s, l) in sig[32..].iter_mut().zip(L) {
            let sum = *s as u16 + l as u16 + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0);
        assert_eq!(
            pem_only().verify(&replace_signature(&t, &sig), NOW),
            Err(TokenError::BadSignature)
        );
    }

    /// One refused token: what it is, the token, the verifier it is shown
    /// to, and the error it must get.
    struct Case {
        name: String,
        token: String,
        verifier: fn() -> JwtVerifier,
        expected: TokenError,
    }

    fn case(
        name: impl Into<String>,
        token: String,
        verifier: fn() -> JwtVerifier,
        expected: TokenError,
    ) -> Case {
        Case {
            name: name.into(),
            token,
            verifier,
            expected,
        }
    }

    fn corpus() -> Vec<Case> {
        use TokenError::*;
        let mut cases = Vec::new();
        let hs = |header: &str, c: &Value| hmac_token(header, c, SECRET);
        let good_hs = hs(r#"{"alg":"HS256","typ":"JWT"}"#, &claims());
        let good_rs = jose_token("RS256");
        let good_es = jose_token("ES256");
        let good_ed = jose_token("EdDSA");
        fn configured() -> JwtVerifier {
            JwtVerifier::new(VerifierConfig {
                secret: SECRET.to_vec(),
                issuer: Some("https://auth.example".into()),
                audience: Some("edgestream".into()),
                ..VerifierConfig::default()
            })
        }
        fn restricted_rs256() -> JwtVerifier {
            let mut jwk = public_jwk("rsa-a");
            jwk["alg"] = json!("RS256");
            jwk["kid"] = json!("rsa-a");
            verifier_with(
                b"",
                vec![VerificationKey::from_jwk(&jwk.to_string()).unwrap()],
            )
        }
        fn restricted_ps256() -> JwtVerifier {
            verifier_with(
                b"",
                vec![pem_key("rsa-a").restricted_to(Algorithm::Ps256).unwrap()],
            )
        }
        fn rsa_only() -> JwtVerifier {
            verifier_with(b"", vec![pem_key("rsa-a")])
        }
        fn rsa_and_other_secret() -> JwtVerifier {
            verifier_with(b"an-unrelated-hmac-secret", vec![pem_key("rsa-a")])
        }
        fn hmac() -> JwtVerifier {
            hmac_only(SECRET)
        }

        // alg "none" in every spelling, with and without a signature.
        for alg in ["none", "None", "NONE", "nOnE", " none", "none "] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            let signed = hs(&header, &claims());
            let unsigned = format!("{}.", signed.rsplit_once('.').unwrap().0);
            cases.push(case(
                format!("alg {alg:?} signed"),
                signed,
                mixed,
                UnsupportedAlgorithm,
            ));
            cases.push(case(
                format!("alg {alg:?} unsigned"),
                unsigned,
                mixed,
                UnsupportedAlgorithm,
            ));
        }
        for header in [
            r#"{"typ":"JWT"}"#,
            r#"{"alg":null}"#,
            r#"{"alg":256}"#,
            r#"{"alg":["HS256"]}"#,
            r#"{"alg":"HS1"}"#,
            r#"{"alg":"RS384"}"#,
        ] {
            cases.push(case(
                format!("header {header}"),
                hs(header, &claims()),
                mixed,
                UnsupportedAlgorithm,
            ));
        }

        // Algorithm confusion: the RSA public key's text as an HMAC secret.
        for name in ["confusion-HS256-rsa-a-pem", "confusion-HS256-rsa-a-jwk"] {
            cases.push(case(
                format!("{name} vs RSA key only"),
                jose_token(name),
                rsa_only,
                UnsupportedAlgorithm,
            ));
            cases.push(case(
                format!("{name} vs RSA key and a secret"),
                jose_token(name),
                rsa_and_other_secret,
                BadSignature,
            ));
        }
        cases.push(case(
            "confusion, kid names the RSA key",
            jose_token("confusion-HS256-rsa-a-pem+kid"),
            mixed,
            UnsupportedAlgorithm,
        ));
        let pkcs1_mac = hmac_token(
            r#"{"alg":"HS256"}"#,
            &claims(),
            pem("rsa-a.pkcs1").as_bytes(),
        );
        cases.push(case(
            "confusion, PKCS#1 text as secret",
            pkcs1_mac,
            rsa_only,
            UnsupportedAlgorithm,
        ));
        let der = pem_der(pem("rsa-a"));
        cases.push(case(
            "confusion, DER bytes as secret",
            hmac_token(r#"{"alg":"HS256"}"#, &claims(), &der),
            rsa_and_other_secret,
            BadSignature,
        ));

        // Asymmetric tokens against an HMAC-only verifier, and the reverse.
        for name in ["RS256", "PS256", "ES256", "EdDSA"] {
            cases.push(case(
                format!("{name} vs HMAC only"),
                jose_token(name),
                hmac,
                UnsupportedAlgorithm,
            ));
        }
        // With a kid no key has, the Worker is told so (it may refresh a
        // JWKS); the HMAC secret is still never used for ES256.
        cases.push(case(
            "ES256+kid vs HMAC only",
            jose_token("ES256+kid"),
            hmac,
            UnknownKey,
        ));
        for name in ["HS256", "HS384", "HS512"] {
            cases.push(case(
                format!("{name} vs public keys only"),
                jose_token(name),
                pem_only,
                UnsupportedAlgorithm,
            ));
        }

        // Signatures by another key of the same type.
        for name in [
            "forged-RS256-by-rsa-b+kid",
            "forged-RS256-by-rsa-b",
            "forged-PS256-by-rsa-b",
            "forged-ES256-by-p256-b+kid",
            "forged-EdDSA-by-ed25519-b+kid",
            "forged-RS256-embedded-jwk",
        ] {
            cases.push(case(name, jose_token(name), mixed, BadSignature));
        }
        cases.push(case(
            "HS256 under another secret",
            sign_hs256(&claims(), b"guessed"),
            mixed,
            BadSignature,
        ));

        // An algorithm the key is not allowed, though the key type fits.
        cases.push(case(
            "PS256 vs key restricted to RS256",
            jose_token("PS256"),
            restricted_rs256,
            UnsupportedAlgorithm,
        ));
        cases.push(case(
            "PS256+kid vs key restricted to RS256",
            jose_token("PS256+kid"),
            restricted_rs256,
            UnsupportedAlgorithm,
        ));
        cases.push(case(
            "RS256 vs key restricted to PS256",
            jose_token("RS256"),
            restricted_ps256,
            UnsupportedAlgorithm,
        ));

        // kid pointing at a key of another type.
        let es_kid_rsa = token(r#"{"alg":"ES256","kid":"rsa-a"}"#, &claims(), "p256-a");
        cases.push(case(
            "ES256 with the RSA key's kid",
            es_kid_rsa,
            mixed,
            UnsupportedAlgorithm,
        ));
        cases.push(case(
            "HS256 with the P-256 key's kid",
            hs(r#"{"alg":"HS256","kid":"p256-a"}"#, &claims()),
            mixed,
            UnsupportedAlgorithm,
        ));
        let ed_kid_p256 = token(r#"{"alg":"EdDSA","kid":"p256-a"}"#, &claims(), "ed25519-a");
        cases.push(case(
            "EdDSA with the P-256 key's kid",
            ed_kid_p256,
            mixed,
            UnsupportedAlgorithm,
        ));

        // kid injection: only ever compared, never used as a path or query.
        let long_kid = "k".repeat(4000);
        for kid in [
            "../../../../etc/passwd",
            "' OR '1'='1",
            "rsa-a\u{0}",
            "RSA-A",
            " rsa-a",
            "",
            "*",
            long_kid.as_str(),
            "https://evil.example/jwks.json",
        ] {
            let header = json!({"alg": "RS256", "kid": kid}).to_string();
            cases.push(case(
                format!("kid {:.40?}", kid),
                token(&header, &claims(), "rsa-b"),
                mixed,
                UnknownKey,
            ));
        }
        for kid in [
            json!(1),
            json!(null),
            json!(["rsa-a"]),
            json!({"kid": "rsa-a"}),
            json!(true),
        ] {
            let header = json!({"alg": "RS256", "kid": kid}).to_string();
            cases.push(case(
                format!("kid {kid}"),
                token(&header, &claims(), "rsa-a"),
                mixed,
                BadClaim("kid"),
            ));
        }

        // Truncated and damaged signatures.
        for (name, good) in [
            ("HS256", &good_hs),
            ("RS256", &good_rs),
            ("ES256", &good_es),
            ("EdDSA", &good_ed),
        ] {
            let sig = signature_of(good);
            cases.push(case(
                format!("{name} signature missing a byte"),
                replace_signature(good, &sig[..sig.len() - 1]),
                mixed,
                BadSignature,
            ));
            cases.push(case(
                format!("{name} signature half"),
                replace_signature(good, &sig[..sig.len() / 2]),
                mixed,
                BadSignature,
            ));
            cases.push(case(
                format!("{name} signature empty"),
                replace_signature(good, &[]),
                mixed,
                BadSignature,
            ));
            let mut flipped = sig.clone();
            flipped[sig.len() / 2] ^= 1;
            cases.push(case(
                format!("{name} signature one bit off"),
                replace_signature(good, &flipped),
                mixed,
                BadSignature,
            ));
            cases.push(case(
                format!("{name} signature with a byte more"),
                replace_signature(good, &[sig.clone(), vec![0]].concat()),
                mixed,
                BadSignature,
            ));
        }
        cases.push(case(
            "RS256 truncated mid-character",
            good_rs[..good_rs.len() - 1].to_owned(),
            mixed,
            Malformed,
        ));
        let rs_parts: Vec<&str> = good_rs.split('.').collect();
        cases.push(case(
            "RS256 without signature segment",
            format!("{}.{}", rs_parts[0], rs_parts[1]),
            mixed,
            Malformed,
        ));
        // ES256 as DER (what some libraries emit by mistake) instead of r || s.
        let raw = signature_of(&good_es);
        let der_sig = [
            vec![0x30, 0x46, 0x02, 0x21, 0x00],
            raw[..32].to_vec(),
            vec![0x02, 0x21, 0x00],
            raw[32..].to_vec(),
        ]
        .concat();
        cases.push(case(
            "ES256 signature in DER",
            replace_signature(&good_es, &der_sig),
            mixed,
            BadSignature,
        ));

        // Bad base64.
        cases.push(case(
            "padded signature",
            format!("{good_rs}="),
            mixed,
            Malformed,
        ));
        cases.push(case(
            "standard alphabet",
            good_hs.replace('-', "+").replace('_', "/") + "+/",
            mixed,
            Malformed,
        ));
        cases.push(case(
            "space inside",
            format!("{} {}", &good_es[..4], &good_es[4..]),
            mixed,
            Malformed,
        ));
        cases.push(case("non-ASCII", format!("{good_ed}é"), mixed, Malformed));
        cases.push(case(
            "header not base64",
            format!("*{}", &good_hs[1..]),
            mixed,
            Malformed,
        ));
        cases.push(case(
            "four segments",
            format!("{good_rs}.{}", rs_parts[2]),
            mixed,
            Malformed,
        ));

        // Huge header: refused by size before anything is decoded.
        let huge = json!({"alg": "HS256", "pad": "x".repeat(MAX_TOKEN_BYTES)}).to_string();
        cases.push(case("huge header", hs(&huge, &claims()), mixed, Malformed));
        let deep = format!(
            r#"{{"alg":"HS256","x":{}{}}}"#,
            "[".repeat(2000),
            "]".repeat(2000)
        );
        cases.push(case(
            "deeply nested header",
            hs(&deep, &claims()),
            mixed,
            Malformed,
        ));

        // crit.
        cases.push(case(
            "crit b64",
            hs(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, &claims()),
            mixed,
            BadClaim("crit"),
        ));

        // Claims.
        let iss_aud = |extra: Value| {
            let mut c = with(json!({"iss": "https://auth.example", "aud": "edgestream"}));
            for (k, v) in extra.as_object().unwrap() {
                c[k] = v.clone();
            }
            sign_hs256(&c, SECRET)
        };
        cases.push(case(
            "wrong aud",
            iss_aud(json!({"aud": "other-service"})),
            configured,
            WrongAudience,
        ));
        cases.push(case(
            "aud list without us",
            iss_aud(json!({"aud": ["a", "b"]})),
            configured,
            WrongAudience,
        ));
        cases.push(case(
            "wrong iss",
            iss_aud(json!({"iss": "https://evil.example"})),
            configured,
            WrongIssuer,
        ));
        cases.push(case(
            "iss with trailing slash",
            iss_aud(json!({"iss": "https://auth.example/"})),
            configured,
            WrongIssuer,
        ));
        cases.push(case(
            "expired one second past leeway",
            sign_hs256(&with(json!({"exp": NOW - 31})), SECRET),
            mixed,
            Expired,
        ));
        cases.push(case(
            "RS256 expired one second past leeway",
            token(
                r#"{"alg":"RS256"}"#,
                &with(json!({"exp": NOW - 31})),
                "rsa-a",
            ),
            mixed,
            Expired,
        ));
        cases.push(case(
            "nbf in the future",
            sign_hs256(&with(json!({"nbf": NOW + 31})), SECRET),
            mixed,
            NotYetValid,
        ));
        cases.push(case(
            "iat in the future",
            sign_hs256(&with(json!({"iat": NOW + 31})), SECRET),
            mixed,
            IssuedInFuture,
        ));
        cases.push(case(
            "no exp",
            sign_hs256(&json!({"sub": "u", "tenant_id": TENANT}), SECRET),
            mixed,
            MissingExpiry,
        ));
        cases.push(case(
            "exp as string",
            sign_hs256(&with(json!({"exp": "4102444800"})), SECRET),
            mixed,
            BadClaim("exp"),
        ));
        for tenant in [
            json!(42),
            json!([TENANT]),
            json!({"id": TENANT}),
            json!(true),
            json!(""),
        ] {
            cases.push(case(
                format!("tenant {tenant}"),
                sign_hs256(&with(json!({ "tenant_id": tenant })), SECRET),
                mixed,
                BadClaim("tenant"),
            ));
        }
        cases.push(case(
            "refresh token",
            sign_hs256(&with(json!({"token_type": "refresh"})), SECRET),
            mixed,
            NotAccessToken,
        ));
        cases.push(case(
            "SimpleJWT RS256 refresh",
            jose_token("simplejwt-RS256-refresh"),
            mixed,
            NotAccessToken,
        ));

        // A payload changed after signing (another tenant).
        let forged_payload = URL_SAFE_NO_PAD
            .encode(with(json!({"tenant_id": "11111111-2222-4333-8444-555555555555"})).to_string());
        for good in [&good_rs, &good_es, &good_ed, &good_hs] {
            let parts: Vec<&str> = good.split('.').collect();
            cases.push(case(
                format!("payload swapped under {:.20}", parts[0]),
                format!("{}.{forged_payload}.{}", parts[0], parts[2]),
                mixed,
                BadSignature,
            ));
        }
        cases
    }

    /// The DER bytes inside a one-block PEM text.
    fn pem_der(pem_text: &str) -> Vec<u8> {
        use base64::engine::general_purpose::STANDARD;
        let body: String = pem_text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        STANDARD.decode(body).unwrap()
    }

    #[test]
    fn forged_and_malformed_corpus_is_refused() {
        let cases = corpus();
        assert!(cases.len() >= 30, "{}", cases.len());
        let mut failures = Vec::new();
        for c in &cases {
            let got = (c.verifier)().verify(&c.token, NOW);
            if got != Err(c.expected) {
                failures.push(format!(
                    "{}: expected {:?}, got {:?}",
                    c.name, c.expected, got
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn refusals_never_echo_the_token() {
        for c in corpus() {
            let err = (c.verifier)().verify(&c.token, NOW).unwrap_err();
            let problem: Problem = err.into();
            let shown = format!("{} {err:?} {}", problem.to_json(), err);
            for part in c.token.split('.').filter(|p| p.len() >= 8) {
                assert!(!shown.contains(&part[..8]), "{}: {shown}", c.name);
            }
        }
    }
}
