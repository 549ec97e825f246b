//! `POST /v1/admin/kick`: ends live streams by tenant, user or token, for a
//! platform credential with the `events:admin` scope.

use edgestream_core::problem::Problem;
use edgestream_core::revocation::parse_kick;
use worker::{Env, Request, Response};

use super::auth;
use super::config::Config;
use super::http::{internal, json};
use super::objects;
use super::tenant_object::KickOrder;

const ADMIN_SCOPE: &str = "events:admin";

pub async fn kick(mut req: Request, env: &Env, config: &Config) -> Result<Response, Problem> {
    let url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let claims = auth::require_scope(&req, &url, env, config, ADMIN_SCOPE, now).await?;
    if claims.tenant.is_some() {
        return Err(Problem::platform_only());
    }
    let body = req.bytes().await.map_err(internal)?;
    let kick = parse_kick(&body, now)?;
    let order = KickOrder { tag: kick.target.tag(), until_ms: kick.until * 1000 };
    let stub = objects::stub(env, "TENANTS", &kick.tenant)?;
    let response = objects::post(&stub, "https://tenant/kick", &order).await?;
    if response.status_code() != 200 {
        return Err(Problem::unavailable("the kick could not be carried out"));
    }
    let result: serde_json::Value = objects::json(response).await?;
    json(200, &result)
}
