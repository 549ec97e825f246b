//! `POST /v1/admin/kick`: ends live streams by tenant, user or token, for a
//! platform credential (`events:platform`, no tenant) with `events:admin`.

use edgestream_core::authority::{Authority, ADMIN_SCOPE};
use edgestream_core::problem::Problem;
use edgestream_core::protocol::tenant::KickOrder;
use edgestream_core::revocation::parse_kick;
use worker::{Env, Request, Response};

use super::auth;
use super::config::Config;
use super::http::{internal, json, read_body, SMALL_BODY_BYTES};
use super::tenant_client::TenantClient;

pub async fn kick(req: Request, env: &Env, config: &Config) -> Result<Response, Problem> {
    let url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let claims = auth::require_scope(&req, &url, env, config, ADMIN_SCOPE, now).await?;
    if Authority::of(&claims)? != Authority::Platform {
        return Err(Problem::platform_only());
    }
    let body = read_body(&req, SMALL_BODY_BYTES, Problem::body_too_large).await?;
    let kick = parse_kick(&body, now)?;
    let order = KickOrder {
        tag: kick.target.tag(),
        until_ms: kick.until * 1000,
    };
    // A platform credential names no tenant of its own: the tenant it acts
    // on is placed by the configuration, as its own credentials would be.
    let jurisdiction = config.placement(&kick.tenant, &claims)?;
    let report = TenantClient::new(env, jurisdiction, &kick.tenant)?
        .kick(&order)
        .await?;
    json(200, &report)
}
