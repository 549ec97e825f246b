//! Authenticates a request: picks its credential with the contract's
//! precedence (`edgestream_core::credentials`) and turns it into the
//! identity the request runs as.

use edgestream_core::api_key::{self, ApiKeyRecord};
use edgestream_core::credentials::{select_credential, Credential};
use edgestream_core::problem::Problem;
use edgestream_core::ticket::check_ticket_shape;
use edgestream_core::token::Claims;
use worker::{Env, Request, Url};

use super::config::Config;
use super::http::internal;

/// Where a handler accepts credentials from. Browsers' `EventSource` cannot
/// set headers, so streams also take `?access_token=` and `?ticket=`;
/// everything else is called by servers, which must use the header, keeping
/// their long-lived credentials out of URLs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    HeaderOrQuery,
    HeaderOnly,
}

/// Who a request is, once its credential has been checked.
pub enum Identity {
    /// A verified JWT or API key (with the key's fingerprint, so a stream
    /// opened with it can check that the key still exists).
    Claims {
        claims: Claims,
        api_key: Option<String>,
    },
    /// A stream ticket, well-formed but not yet redeemed: redeeming it is
    /// what checks it, and it can happen only once.
    Ticket(String),
}

pub async fn authenticate(
    req: &Request,
    url: &Url,
    env: &Env,
    config: &Config,
    sources: Sources,
    now_unix: u64,
) -> Result<Identity, Problem> {
    let header = req.headers().get("Authorization").ok().flatten();
    let query = |name: &str| -> Vec<String> {
        url.query_pairs()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .collect()
    };
    let (tokens, tickets) = match sources {
        Sources::HeaderOrQuery => (query("access_token"), query("ticket")),
        Sources::HeaderOnly => (Vec::new(), Vec::new()),
    };
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let tickets: Vec<&str> = tickets.iter().map(String::as_str).collect();
    let credential = match select_credential(header.as_deref(), &tokens, &tickets) {
        Err(problem) if problem.code == "missing_credentials" && sources == Sources::HeaderOnly => {
            return Err(if url.query_pairs().any(|(k, _)| k == "access_token") {
                Problem::invalid_token(
                    "this endpoint takes the token in the Authorization header only",
                )
            } else {
                problem
            });
        }
        other => other?,
    };
    match credential {
        Credential::Bearer(jwt) | Credential::QueryToken(jwt) => {
            let claims = config.verify(jwt, now_unix).await?;
            Ok(Identity::Claims {
                claims,
                api_key: None,
            })
        }
        Credential::ApiKey(key) => {
            api_key::check_shape(key)?;
            let fingerprint = api_key::fingerprint(key);
            let record = api_key_record(env, &fingerprint).await?;
            let claims = record
                .ok_or_else(|| Problem::invalid_token("the API key is not known"))?
                .claims(now_unix)?;
            Ok(Identity::Claims {
                claims,
                api_key: Some(fingerprint),
            })
        }
        Credential::Ticket(ticket) => {
            check_ticket_shape(ticket)?;
            Ok(Identity::Ticket(ticket.to_owned()))
        }
    }
}

/// Looks a key's fingerprint up in the `API_KEYS` KV namespace. Without
/// that binding the relay takes no API keys at all.
async fn api_key_record(env: &Env, fingerprint: &str) -> Result<Option<ApiKeyRecord>, Problem> {
    let Ok(store) = env.kv("API_KEYS") else {
        return Err(Problem::invalid_token(
            "API keys are not enabled on this relay",
        ));
    };
    store
        .get(fingerprint)
        .json()
        .await
        .map_err(|e| internal(e.into()))
}

/// Whether the key with this fingerprint still exists and has not expired
/// (a stream opened with it ends when it does not). A lookup that fails
/// counts as valid: the next check asks again.
pub async fn api_key_valid(env: &Env, fingerprint: &str) -> bool {
    let now = worker::Date::now().as_millis() / 1000;
    match api_key_record(env, fingerprint).await {
        Ok(Some(record)) => record.claims(now).is_ok(),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Authenticates a server-to-server request (header credentials only) that
/// needs `scope`.
pub async fn require_scope(
    req: &Request,
    url: &Url,
    env: &Env,
    config: &Config,
    scope: &str,
    now_unix: u64,
) -> Result<Claims, Problem> {
    let (claims, _) = authenticate(req, url, env, config, Sources::HeaderOnly, now_unix)
        .await?
        .into_claims()?;
    if !claims.has_scope(scope) {
        return Err(Problem::insufficient_scope(scope));
    }
    Ok(claims)
}

impl Identity {
    /// The verified identity of a non-stream request, with the API key's
    /// fingerprint if it was one; tickets open streams only.
    pub fn into_claims(self) -> Result<(Claims, Option<String>), Problem> {
        match self {
            Identity::Claims { claims, api_key } => Ok((claims, api_key)),
            Identity::Ticket(_) => Err(Problem::invalid_token("a ticket only opens a stream")),
        }
    }
}
