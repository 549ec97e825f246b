//! Stream tickets: `POST /v1/tickets` issues one, `GET /v1/stream?ticket=`
//! redeems it. Each ticket's grant lives in its own small Durable Object
//! (named by the ticket), whose single-threaded storage is what makes
//! "at most once" hold when two requests redeem the same ticket at the same
//! moment; eventually consistent KV could hand it out twice.

use edgestream_core::channel::authorize_tenant;
use edgestream_core::problem::Problem;
use edgestream_core::ticket::{parse_ticket_request, TicketGrant, TICKET_BYTES, TICKET_TTL_SECONDS};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::auth::{self, Sources};
use super::config::Config;
use super::http::{internal, json};
use super::objects;

const GRANT_KEY: &str = "grant";

pub async fn issue(mut req: Request, env: &Env, config: &Config) -> std::result::Result<Response, Problem> {
    let url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let claims = auth::authenticate(&req, &url, env, config, Sources::HeaderOnly, now)
        .await?
        .into_claims()?;
    let body = req.bytes().await.map_err(internal)?;
    let channels = parse_ticket_request(&body, config.settings.max_channels_per_stream)?;
    authorize_tenant(claims.tenant.as_deref(), &channels)?;
    let grant = TicketGrant::new(&claims, &channels, now)?;

    let ticket = random_ticket()?;
    let stub = objects::stub(env, "TICKETS", &ticket)?;
    let response = objects::post(&stub, "https://ticket/issue", &grant).await?;
    if response.status_code() != 201 {
        return Err(Problem::unavailable("the ticket could not be stored"));
    }
    json(
        201,
        &serde_json::json!({
            "ticket": ticket,
            "expires_in": TICKET_TTL_SECONDS,
            "channels": grant.channels,
        }),
    )
}

/// Redeems a ticket once; a second redeem, or an unknown or expired ticket,
/// is refused.
pub async fn redeem(env: &Env, ticket: &str) -> std::result::Result<TicketGrant, Problem> {
    let stub = objects::stub(env, "TICKETS", ticket)?;
    let response = objects::post(&stub, "https://ticket/redeem", &()).await?;
    match response.status_code() {
        200 => objects::json(response).await,
        404 => Err(Problem::invalid_token("the ticket is unknown, used or expired")),
        _ => Err(Problem::unavailable("the ticket could not be checked")),
    }
}

fn random_ticket() -> std::result::Result<String, Problem> {
    let mut bytes = [0u8; TICKET_BYTES];
    getrandom::getrandom(&mut bytes).map_err(|_| Problem::internal("no randomness"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Holds one ticket's grant until it is redeemed, or its alarm deletes it.
#[durable_object]
pub struct TicketObject {
    state: State,
}

impl DurableObject for TicketObject {
    fn new(state: State, _env: Env) -> Self {
        Self { state }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let storage = self.state.storage();
        match req.path().as_str() {
            "/issue" => {
                let grant: TicketGrant = req.json().await?;
                storage.put(GRANT_KEY, &grant).await?;
                let redeem_before_ms = grant.redeem_before as i64 * 1000;
                storage
                    .set_alarm(redeem_before_ms - worker::Date::now().as_millis() as i64)
                    .await?;
                Ok(Response::empty()?.with_status(201))
            }
            "/redeem" => {
                // Awaiting storage keeps the object's input gate closed, so no
                // second redeem is delivered between this read and the delete.
                let grant: Option<TicketGrant> = storage.get(GRANT_KEY).await?;
                storage.delete_all().await?;
                let now = worker::Date::now().as_millis() / 1000;
                match grant {
                    Some(grant) if now < grant.redeem_before => Response::from_json(&grant),
                    _ => Ok(Response::empty()?.with_status(404)),
                }
            }
            _ => Ok(Response::empty()?.with_status(404)),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::ok("")
    }
}
