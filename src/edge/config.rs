//! Settings and the token verifier, read from the Worker's vars and secrets.

use edgestream_core::config::Settings;
use edgestream_core::problem::Problem;
use edgestream_core::token::{JwtVerifier, VerifierConfig};
use worker::Env;

pub struct Config {
    pub settings: Settings,
    pub verifier: JwtVerifier,
}

impl Config {
    /// Reads the configuration for one request. A bad value is an operator
    /// error: it is logged by name and the request fails closed with 503
    /// rather than running with a silently defaulted setting.
    pub fn load(env: &Env) -> Result<Self, Problem> {
        let lookup = |name: &str| env.var(name).ok().map(|v| v.to_string());
        let settings = Settings::from_lookup(lookup).map_err(|e| {
            log_misconfiguration(&e.to_string());
            Problem::unavailable("the relay is misconfigured")
        })?;
        let secret = env
            .secret("JWT_SECRET")
            .map(|s| s.to_string())
            .unwrap_or_default();
        if secret.is_empty() {
            log_misconfiguration("JWT_SECRET is not set");
            return Err(Problem::unavailable("authentication is not configured"));
        }
        let verifier = JwtVerifier::new(VerifierConfig {
            secret: secret.into_bytes(),
            issuer: settings.jwt_issuer.clone(),
            audience: settings.jwt_audience.clone(),
            tenant_claim: settings.tenant_claim.clone(),
            leeway_seconds: settings.jwt_leeway_seconds,
        });
        Ok(Self { settings, verifier })
    }
}

fn log_misconfiguration(reason: &str) {
    worker::console_error!(
        "{}",
        serde_json::json!({"level": "error", "msg": "configuration", "error": reason})
    );
}
