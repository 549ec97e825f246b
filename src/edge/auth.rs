//! Authenticates a request: picks its credential with the contract's
//! precedence (see `edgestream_core::credentials`) and verifies it.

use edgestream_core::credentials::{select_credential, Credential};
use edgestream_core::problem::Problem;
use edgestream_core::token::Claims;
use worker::{Request, Url};

use super::config::Config;

/// Where a handler accepts a JWT from. Browsers' `EventSource` cannot set
/// headers, so streams also take `?access_token=`; publishers are servers and
/// must use the header, which keeps their long-lived tokens out of URLs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sources {
    HeaderOrQuery,
    HeaderOnly,
}

pub fn authenticate(
    req: &Request,
    url: &Url,
    config: &Config,
    sources: Sources,
    now_unix: u64,
) -> Result<Claims, Problem> {
    let header = req.headers().get("Authorization").ok().flatten();
    let query_tokens: Vec<String> = match sources {
        Sources::HeaderOrQuery => url
            .query_pairs()
            .filter(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned())
            .collect(),
        Sources::HeaderOnly => Vec::new(),
    };
    let query_refs: Vec<&str> = query_tokens.iter().map(String::as_str).collect();
    match select_credential(header.as_deref(), &query_refs)? {
        Credential::Bearer(jwt) | Credential::QueryToken(jwt) => {
            config.verifier.verify(jwt, now_unix).map_err(Problem::from)
        }
        Credential::ApiKey(_) => Err(Problem::invalid_token("API keys are not enabled on this relay")),
    }
}
