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

use crate::keys::{self, Algorithm, SignatureCheck, VerificationKey};
use crate::problem::Problem;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
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
    /// The claim that must say `access` when present, besides `token_type`
    /// and `typ`, which always must (see [`TokenError::NotAccessToken`]).
    pub token_type_claim: String,
    /// The claim read into [`Claims::jurisdiction`].
    pub jurisdiction_claim: String,
    pub leeway_seconds: u64,
}

impl Default for VerifierConfig {
    /// No secret and no keys (which verifies nothing), tenant from
    /// `tenant_id`, token type from `token_type` (SimpleJWT's default),
    /// 30 s leeway.
    fn default() -> Self {
        VerifierConfig {
            secret: Vec::new(),
            keys: Vec::new(),
            issuer: None,
            audience: None,
            tenant_claim: "tenant_id".to_owned(),
            token_type_claim: "token_type".to_owned(),
            jurisdiction_claim: "jurisdiction".to_owned(),
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
            .field("token_type_claim", &self.token_type_claim)
            .field("jurisdiction_claim", &self.jurisdiction_claim)
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
    token_type_claim: String,
    jurisdiction_claim: String,
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
    /// The claim named by `jurisdiction_claim`: the Durable Object
    /// jurisdiction the issuer says the tenant's data lives in, checked
    /// against the configuration (`crate::residency`), never obeyed.
    pub jurisdiction: Option<String>,
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
    /// The claim named by `token_type_claim`, `token_type` or `typ` is
    /// present and is not the string `access`. The last two are checked
    /// whatever the setting: SimpleJWT calls the claim `token_type` by
    /// default and Prowler renames it `typ`, and a refresh token (which
    /// lives for a day and carries the tenant) must not open a stream
    /// because a setting names a third claim. Only the payload claim is
    /// meant; the JOSE header's `typ` (`JWT`) is another thing.
    NotAccessToken,
    /// The header or the payload has an object with the same member name
    /// twice, at any depth. Parsers disagree on which one counts.
    DuplicateMember,
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
            TokenError::DuplicateMember => "token header or payload has a duplicate JSON member",
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
                "jurisdiction" => "token jurisdiction claim must be a string",
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
            token_type_claim: cfg.token_type_claim,
            jurisdiction_claim: cfg.jurisdiction_claim,
            leeway_seconds: cfg.leeway_seconds,
        }
    }

    pub fn keys(&self) -> &[VerificationKey] {
        &self.keys
    }

    /// Checks size, shape, header, signature, then claims, in that order:
    /// nothing in the payload is looked at before the signature holds.
    /// `extra_keys` (a JWKS fetched at run time and cached by the Worker)
    /// are considered after the configured ones, so the cache can change
    /// without rebuilding the verifier; `signatures` checks public-key
    /// signatures (see [`SignatureCheck`]).
    ///
    /// The header is parsed before the signature because it names the key,
    /// so its duplicate members are refused then, from at most 8 KiB of
    /// unauthenticated input. The payload's are refused only once the
    /// signature holds, like every other payload rule: a forger learns
    /// nothing about how a payload is read, and a signed payload with a
    /// duplicate member is the issuer's to fix.
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
    pub async fn verify(
        &self,
        token: &str,
        extra_keys: &[VerificationKey],
        now_unix: u64,
        signatures: &impl SignatureCheck,
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
        let mut verified = false;
        for key in usable {
            if key
                .verify(algorithm, signing_input, &signature, signatures)
                .await
            {
                verified = true;
                break;
            }
        }
        if !verified {
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
        for name in [self.token_type_claim.as_str(), "token_type", "typ"] {
            if claims
                .get(name)
                .is_some_and(|kind| kind.as_str() != Some("access"))
            {
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
            jurisdiction: match claims.get(&self.jurisdiction_claim) {
                None => None,
                Some(Value::String(j)) => Some(j.clone()),
                Some(_) => return Err(TokenError::BadClaim("jurisdiction")),
            },
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

/// A JSON object in which no object, at any depth, has a member name twice.
/// serde_json keeps the last of two `alg`s, other parsers the first; a token
/// that one component reads as HS256 and another as `none` is refused rather
/// than read either way. Names are compared after unescaping, so `"alg"`
/// and `"\u0061lg"` are the same member.
fn decode_object(segment: &str) -> Result<Map<String, Value>, TokenError> {
    match serde_json::from_slice::<UniqueMembers>(&decode_segment(segment)?) {
        Ok(UniqueMembers(Value::Object(map))) => Ok(map),
        Err(err) if err.is_data() => Err(TokenError::DuplicateMember),
        _ => Err(TokenError::Malformed),
    }
}

/// A JSON value read with [`UniqueMembersVisitor`]. serde_json's own
/// parser does the syntax, including its recursion limit; the visitor only
/// builds the value. Its one refusal is a duplicate member, reported as a
/// data error, which is how [`decode_object`] tells it from bad syntax.
struct UniqueMembers(Value);

impl<'de> Deserialize<'de> for UniqueMembers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueMembersVisitor)
            .map(UniqueMembers)
    }
}

struct UniqueMembersVisitor;

impl<'de> Visitor<'de> for UniqueMembersVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueMembers(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom("duplicate member"));
            }
            let UniqueMembers(value) = map.next_value()?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
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
mod forgery_tests;
#[cfg(test)]
mod key_tests;
#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
