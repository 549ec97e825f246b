//! Settings and the token verifier, read from the Worker's vars and secrets
//! once per isolate (they cannot change while it lives), plus the JWKS
//! fetched from `JWKS_URL`, cached with a TTL and refreshed at most once a
//! minute when a token names an unknown key.

use std::cell::RefCell;
use std::pin::pin;
use std::rc::Rc;
use std::time::Duration;

use edgestream_core::config::Settings;
use edgestream_core::jwks::{JwksCache, JwksPolicy, RefreshTrigger};
use edgestream_core::keys::{VerificationKey, MAX_JWKS_BYTES};
use edgestream_core::problem::Problem;
use edgestream_core::residency::Jurisdiction;
use edgestream_core::token::{Claims, JwtVerifier, TokenError, VerifierConfig};
use futures_util::future::{select, Either};
use futures_util::StreamExt;
use worker::{AbortController, AbortSignal, Delay, Env, Fetch, Url};

use super::signatures::WebCrypto;

/// How long one JWKS fetch may take, body included. The request that
/// triggered it waits at most this long (the others meanwhile verify with
/// the keys already held); an issuer slower than this is treated as down.
const JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Config {
    pub settings: Settings,
    verifier: JwtVerifier,
    jwks_url: Option<Url>,
}

thread_local! {
    static LOADED: RefCell<Option<Rc<Config>>> = const { RefCell::new(None) };
    static JWKS: RefCell<JwksCache> = RefCell::new(JwksCache::default());
}

impl Config {
    /// The isolate's configuration. A bad value is an operator error: it is
    /// logged by name and requests fail closed with 503 rather than running
    /// with a silently defaulted setting.
    pub fn load(env: &Env) -> Result<Rc<Self>, Problem> {
        if let Some(config) = LOADED.with(|c| c.borrow().clone()) {
            return Ok(config);
        }
        let config = Rc::new(Self::read(env)?);
        LOADED.with(|c| *c.borrow_mut() = Some(config.clone()));
        Ok(config)
    }

    fn read(env: &Env) -> Result<Self, Problem> {
        let settings = Settings::from_lookup(|name| text(env, name))
            .map_err(|e| misconfigured(&e.to_string()))?;
        let mut keys = Vec::new();
        if let Some(secret) = text(env, "JWT_SECRET") {
            let key = VerificationKey::hmac(secret.as_bytes())
                .map_err(|e| misconfigured(&format!("JWT_SECRET: {e}")))?;
            keys.push(key);
        }
        if let Some(pem) = text(env, "JWT_PUBLIC_KEY") {
            let pem_keys = VerificationKey::from_pem(&pem)
                .map_err(|e| misconfigured(&format!("JWT_PUBLIC_KEY: {e}")))?;
            keys.extend(pem_keys);
        }
        if let Some(jwks) = text(env, "JWKS") {
            let jwks_keys = VerificationKey::from_jwks(&jwks)
                .map_err(|e| misconfigured(&format!("JWKS: {e}")))?;
            keys.extend(jwks_keys);
        }
        JWKS.with(|c| {
            *c.borrow_mut() = JwksCache::new(JwksPolicy {
                min_refresh_interval_seconds: settings.jwks_refresh_cooldown_seconds,
                ..JwksPolicy::default()
            })
        });
        let jwks_url = match text(env, "JWKS_URL") {
            Some(url) => Some(
                jwks_url(&url).map_err(|reason| misconfigured(&format!("JWKS_URL: {reason}")))?,
            ),
            None => None,
        };
        if keys.is_empty() && jwks_url.is_none() {
            return Err(misconfigured(
                "no verification key: set JWT_SECRET, JWT_PUBLIC_KEY, JWKS or JWKS_URL",
            ));
        }
        let verifier = JwtVerifier::new(VerifierConfig {
            keys,
            ..settings.verifier_config(Vec::new())
        });
        Ok(Self {
            settings,
            verifier,
            jwks_url,
        })
    }

    /// Where `tenant`'s objects are for a request with `claims`: the
    /// configured jurisdiction, or `jurisdiction_mismatch` when the claims
    /// assert another.
    pub fn placement(
        &self,
        tenant: &str,
        claims: &Claims,
    ) -> Result<Option<Jurisdiction>, Problem> {
        self.settings
            .residency
            .admit(tenant, claims.jurisdiction.as_deref())
    }

    /// Verifies a JWT against the configured keys and, with `JWKS_URL`, the
    /// issuer's current key set.
    pub async fn verify(&self, jwt: &str, now_unix: u64) -> Result<Claims, Problem> {
        let Some(url) = &self.jwks_url else {
            return self
                .verifier
                .verify(jwt, &[], now_unix, &WebCrypto)
                .await
                .map_err(Problem::from);
        };
        if JWKS.with(|c| c.borrow().should_refresh(now_unix, RefreshTrigger::Request)) {
            refresh_jwks(url, now_unix).await;
        }
        let verify = || async {
            let fetched = JWKS.with(|c| c.borrow().keys());
            self.verifier
                .verify(jwt, &fetched, now_unix, &WebCrypto)
                .await
        };
        match verify().await {
            Err(TokenError::UnknownKey)
                if JWKS.with(|c| {
                    c.borrow()
                        .should_refresh(now_unix, RefreshTrigger::UnknownKey)
                }) =>
            {
                refresh_jwks(url, now_unix).await;
                verify().await.map_err(Problem::from)
            }
            other => other.map_err(Problem::from),
        }
    }
}

/// Fetches the JWKS. A failed fetch keeps the keys already held; either way
/// the attempt counts against the refresh rate limit, so a flood of tokens
/// with random `kid`s cannot hammer the issuer.
async fn refresh_jwks(url: &Url, now_unix: u64) {
    JWKS.with(|c| c.borrow_mut().start_refresh(now_unix));
    let outcome = fetch_jwks(url).await.and_then(|body| {
        JWKS.with(|c| c.borrow_mut().store_fetched(&body, now_unix))
            .map_err(|e| e.to_string())
    });
    match outcome {
        Ok(skipped) => {
            for key in skipped {
                log(
                    "warn",
                    "jwks key skipped",
                    &format!("{:?}: {}", key.kid, key.reason),
                );
            }
        }
        Err(reason) => log("error", "jwks fetch failed", &reason),
    }
}

/// The JWKS document, fetched with three bounds: no redirect is followed (a
/// configured https URL must not be bounced to another host or to http),
/// the whole exchange ends after [`JWKS_FETCH_TIMEOUT`], and the body is read
/// in chunks that stop as soon as it passes [`MAX_JWKS_BYTES`], so a hostile
/// or broken issuer can cost this isolate neither time nor memory.
async fn fetch_jwks(url: &Url) -> Result<String, String> {
    let controller = AbortController::default();
    let outcome = match select(
        pin!(read_jwks(url, &controller.signal())),
        pin!(Delay::from(JWKS_FETCH_TIMEOUT)),
    )
    .await
    {
        Either::Left((outcome, _)) => outcome,
        Either::Right(_) => Err(format!(
            "no complete answer within {} s",
            JWKS_FETCH_TIMEOUT.as_secs()
        )),
    };
    // Ends the connection of a body left unread (too large, too slow).
    controller.abort();
    outcome
}

async fn read_jwks(url: &Url, signal: &AbortSignal) -> Result<String, String> {
    let init = web_sys::RequestInit::new();
    init.set_redirect(web_sys::RequestRedirect::Manual);
    let request = super::http::request(url.as_str(), &init).map_err(|e| e.to_string())?;
    let mut response = Fetch::Request(request)
        .send_with_signal(signal)
        .await
        .map_err(|e| e.to_string())?;
    match response.status_code() {
        200 => {}
        status @ 300..=399 => return Err(format!("redirects are not followed (status {status})")),
        status => return Err(format!("status {status}")),
    }
    let too_large = || format!("body is larger than {} KiB", MAX_JWKS_BYTES / 1024);
    let declared = response.headers().get("Content-Length").ok().flatten();
    if declared
        .and_then(|length| length.parse::<u64>().ok())
        .is_some_and(|length| length > MAX_JWKS_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut chunks = response.stream().map_err(|e| e.to_string())?;
    let mut body = Vec::new();
    while let Some(chunk) = chunks.next().await {
        body.extend(chunk.map_err(|e| e.to_string())?);
        if body.len() > MAX_JWKS_BYTES {
            return Err(too_large());
        }
    }
    String::from_utf8(body).map_err(|_| "body is not UTF-8".to_owned())
}

/// `https://`, or `http://` on a loopback host for local issuers.
fn jwks_url(raw: &str) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "not a URL")?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        _ => Err("must be https (or http on a loopback host)"),
    }
}

/// A var or secret; empty counts as unset.
fn text(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|value| !value.is_empty())
}

fn misconfigured(reason: &str) -> Problem {
    log("error", "configuration", reason);
    Problem::unavailable("the relay is misconfigured")
}

fn log(level: &str, msg: &str, error: &str) {
    worker::console_error!(
        "{}",
        serde_json::json!({"level": level, "msg": msg, "error": error})
    );
}
