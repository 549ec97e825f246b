//! Stream tickets: `POST /v1/tickets` issues one, `GET /v1/stream?ticket=`
//! redeems it. Each ticket's grant lives in its own small Durable Object
//! (named by the ticket), whose single-threaded storage is what makes
//! "at most once" hold when two requests redeem the same ticket at the same
//! moment; eventually consistent KV could hand it out twice.

use edgestream_core::authority::Authority;
use edgestream_core::channel::authorize_tenant;
use edgestream_core::problem::Problem;
use edgestream_core::protocol::ticket::{self, TicketRequest, UNKNOWN};
use edgestream_core::residency::Jurisdiction;
use edgestream_core::revocation::stream_tags;
use edgestream_core::ticket::{
    check_ticket_shape, parse_ticket_request, ticket_id, TicketGrant, TICKET_BYTES,
    TICKET_TTL_SECONDS,
};
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use super::auth::{self, Sources};
use super::channel_client::ChannelClient;
use super::channel_object::bad_request;
use super::config::Config;
use super::http::{internal, json, read_body, SMALL_BODY_BYTES};
use super::objects::{self, text, Arrived};
use super::usage::Usage;

const GRANT_KEY: &str = "grant";

pub async fn issue(
    req: Request,
    env: &Env,
    config: &Config,
    usage: &Usage,
) -> std::result::Result<Response, Problem> {
    let url = req.url().map_err(internal)?;
    let now = worker::Date::now().as_millis() / 1000;
    let (claims, api_key) = auth::authenticate(&req, &url, env, config, Sources::HeaderOnly, now)
        .await?
        .into_claims()?;
    let tenant = Authority::of(&claims)?;
    if let Authority::Tenant(tenant) = &tenant {
        usage.acts_for(tenant);
    }
    let body = read_body(&req, SMALL_BODY_BYTES, Problem::body_too_large).await?;
    let channels = parse_ticket_request(&body, config.settings.max_channels_per_stream)?;
    authorize_tenant(Some(tenant.tenant()?), &channels)?;
    let jurisdiction = config.placement(tenant.tenant()?, &claims)?;
    // A revoked user or token gets no ticket: its channels' tenant says so.
    let tags = stream_tags(claims.subject.as_deref(), claims.jti.as_deref());
    ChannelClient::channel(env, jurisdiction, channels[0].as_str())?
        .admit(tags)
        .await?;
    let grant = TicketGrant::new(&claims, &channels, now, api_key)?.in_jurisdiction(jurisdiction);

    // The grant names the subject and the tenant's channels: it is kept in
    // the tenant's jurisdiction, which the ticket's id names so that the
    // redeem finds it there.
    let ticket = ticket_id(jurisdiction, &random_ticket()?);
    let response = objects::send(
        &stub(env, jurisdiction, &ticket)?,
        &TicketRequest::issue(&grant),
    )
    .await?;
    if response.status_code() != 201 {
        return Err(Problem::overloaded("the ticket could not be stored"));
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
    let jurisdiction = check_ticket_shape(ticket)?;
    let response =
        objects::send(&stub(env, jurisdiction, ticket)?, &TicketRequest::redeem()).await?;
    match response.status_code() {
        200 => ticket::grant(text(response).await?.as_bytes())
            .map_err(|e| Problem::internal(e.to_string())),
        UNKNOWN => Err(Problem::invalid_token(
            "the ticket is unknown, used or expired",
        )),
        _ => Err(Problem::overloaded("the ticket could not be checked")),
    }
}

fn stub(
    env: &Env,
    jurisdiction: Option<Jurisdiction>,
    ticket: &str,
) -> std::result::Result<worker::Stub, Problem> {
    objects::stub(
        &env.durable_object("TICKETS").map_err(internal)?,
        jurisdiction,
        ticket,
    )
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
        let arrived = Arrived::read(&mut req).await?;
        let storage = self.state.storage();
        match TicketRequest::parse(&arrived.incoming()) {
            Ok(TicketRequest::Issue(grant)) => {
                // As JSON text: a grant's expiry can be u64::MAX (an API key
                // that never expires), which a JavaScript number cannot hold.
                storage
                    .put(GRANT_KEY, serde_json::to_string(&grant)?)
                    .await?;
                let redeem_before_ms = grant.redeem_before as i64 * 1000;
                storage
                    .set_alarm(redeem_before_ms - worker::Date::now().as_millis() as i64)
                    .await?;
                Ok(Response::empty()?.with_status(201))
            }
            Ok(TicketRequest::Redeem) => {
                // Awaiting storage keeps the object's input gate closed, so no
                // second redeem is delivered between this read and the delete.
                let grant: Option<String> = storage.get(GRANT_KEY).await?;
                storage.delete_all().await?;
                let now = worker::Date::now().as_millis() / 1000;
                match grant.and_then(|g| ticket::grant(g.as_bytes()).ok()) {
                    Some(grant) if now < grant.redeem_before => {
                        Response::ok(serde_json::to_string(&grant)?)
                    }
                    _ => Ok(Response::empty()?.with_status(UNKNOWN)),
                }
            }
            Err(error) => bad_request(&error),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.state.storage().delete_all().await?;
        Response::ok("")
    }
}
