//! A typed client for a tenant's object (`edgestream_core::protocol::tenant`).

use edgestream_core::problem::Problem;
use edgestream_core::protocol::tenant::{
    KickOrder, KickReport, LeaseAsk, LeaseGrant, Register, Revocations,
};
use edgestream_core::protocol::Call;
use edgestream_core::residency::Jurisdiction;
use worker::{Env, Stub};

use super::objects::{self, text};

pub const TENANTS: &str = "TENANTS";

pub struct TenantClient {
    stub: Stub,
}

impl TenantClient {
    /// The object of `tenant`, whose data lives in `jurisdiction`.
    pub fn new(
        env: &Env,
        jurisdiction: Option<Jurisdiction>,
        tenant: &str,
    ) -> Result<Self, Problem> {
        let namespace = env.durable_object(TENANTS).map_err(super::http::internal)?;
        Ok(TenantClient {
            stub: objects::stub(&namespace, jurisdiction, tenant)?,
        })
    }

    /// Registers `channel` with its tenant and learns the revocations in force.
    pub async fn register(&self, channel: &str) -> Result<Revocations, Problem> {
        let answer = self
            .call(
                &Register {
                    channel: channel.to_owned(),
                }
                .call(),
            )
            .await?;
        Revocations::parse(answer.as_bytes()).map_err(protocol)
    }

    pub async fn kick(&self, order: &KickOrder) -> Result<KickReport, Problem> {
        let answer = self.call(&order.call()).await?;
        KickReport::parse(answer.as_bytes()).map_err(protocol)
    }

    /// Asks for the isolate's lease of the tenant's stream slots.
    pub async fn lease(&self, ask: &LeaseAsk) -> Result<LeaseGrant, Problem> {
        let answer = self.call(&ask.call()).await?;
        LeaseGrant::parse(answer.as_bytes()).map_err(protocol)
    }

    async fn call(&self, call: &Call) -> Result<String, Problem> {
        let response = objects::send(&self.stub, call).await?;
        match response.status_code() {
            200 => text(response).await,
            429 => Err(Problem::quota_exceeded(
                "the tenant holds as many revocations as it may",
                60,
            )),
            status => {
                super::log::error(
                    "tenant object refused a call",
                    &format!("{} {status}", call.path),
                );
                Err(Problem::overloaded("the relay is busy; retry shortly"))
            }
        }
    }
}

fn protocol(error: impl ToString) -> Problem {
    super::log::error("bad answer from a tenant object", &error.to_string());
    Problem::overloaded("the relay is busy; retry shortly")
}
