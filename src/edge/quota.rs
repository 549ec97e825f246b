//! Per-tenant quotas: publishes per period through Cloudflare's rate-limiting
//! binding (`PUBLISH_QUOTA`), and open streams (`MAX_STREAMS_PER_TENANT`)
//! through slots this isolate leases from the tenant's object in blocks
//! (`edgestream_core::quota` decides; this only carries the asks).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::time::Duration;

use edgestream_core::config::Settings;
use edgestream_core::problem::Problem;
use edgestream_core::quota::{
    Admission, LeaseGrant, Pool, Sent, RENEW_EVERY_MS, STREAM_RETRY_AFTER_SECONDS,
};
use edgestream_core::residency::Jurisdiction;
use futures_util::future::{join_all, select};
use wasm_bindgen::{JsCast, JsValue};
use worker::{Delay, Env, RateLimiter};

use super::log;
use super::tenant_client::TenantClient;

/// The rate-limiting binding publishes are counted with, one call per
/// tenant per publish request.
pub const PUBLISH_QUOTA: &str = "PUBLISH_QUOTA";

/// Least wait between two looks at a renewal another stream has out.
const RENEW_POLL_MS: u64 = 1000;

thread_local! {
    static POOLS: RefCell<HashMap<String, Pool>> = RefCell::new(HashMap::new());
    /// This isolate's name at the tenants' ledgers.
    static HOLDER: String = format!(
        "{:013x}{:013x}",
        (js_sys::Math::random() * (1u64 << 52) as f64) as u64,
        (js_sys::Math::random() * (1u64 << 52) as f64) as u64
    );
}

/// Counts one publish against the publish quota of each tenant it writes
/// to (a platform publisher's batch counts against every tenant it names).
/// Without the binding there is no publish quota.
pub async fn admit_publish(
    env: &Env,
    settings: &Settings,
    tenants: &[&str],
) -> Result<(), Problem> {
    let binding = js_sys::Reflect::get(env.as_ref(), &JsValue::from_str(PUBLISH_QUOTA))
        .unwrap_or(JsValue::UNDEFINED);
    if binding.is_undefined() {
        return Ok(());
    }
    let limiter = RateLimiter::unchecked_from_js(binding);
    let outcomes = join_all(tenants.iter().map(|t| limiter.limit((*t).to_owned()))).await;
    for outcome in outcomes {
        match outcome {
            Ok(outcome) if outcome.success => {}
            Ok(_) => {
                let period = settings.publish_quota_period_seconds;
                return Err(Problem::quota_exceeded(
                    format!("the tenant publishes more often than its quota allows per {period} s"),
                    period,
                ));
            }
            Err(error) => {
                // Fail closed: an unusable binding must not lift the quota.
                log::error("publish quota unavailable", &error.to_string());
                return Err(Problem::unavailable("the relay is misconfigured"));
            }
        }
    }
    Ok(())
}

/// A stream's slot of its tenant's quota, given back when dropped.
pub struct StreamSlot {
    env: Env,
    /// Where the tenant's object lives: leases are asked of it there.
    jurisdiction: Option<Jurisdiction>,
    tenant: String,
}

/// Takes a slot for a new stream of `tenant`: from this isolate's pool, or,
/// when that is empty, by asking the tenant's object for a block. None when
/// there is no stream quota.
pub async fn admit_stream(
    env: &Env,
    settings: &Settings,
    jurisdiction: Option<Jurisdiction>,
    tenant: &str,
) -> Result<Option<StreamSlot>, Problem> {
    let limit = settings.max_streams_per_tenant;
    if limit == 0 {
        return Ok(None);
    }
    let admission = with_pool(tenant, limit, |pool| pool.admit(now_ms()));
    let admitted = match admission {
        Admission::Admitted => true,
        Admission::Ask(sent) => {
            let grant = ask(env, jurisdiction, tenant, &sent).await;
            let admitted = with_pool(tenant, limit, |pool| {
                pool.answered(&sent, grant.as_ref().ok(), now_ms())
            });
            if let (false, Err(problem)) = (admitted, grant) {
                forget_if_idle(tenant);
                return Err(problem);
            }
            admitted
        }
    };
    if !admitted {
        forget_if_idle(tenant);
        return Err(Problem::quota_exceeded(
            format!("the tenant has {limit} streams open, as many as it may"),
            STREAM_RETRY_AFTER_SECONDS,
        ));
    }
    Ok(Some(StreamSlot {
        env: env.clone(),
        jurisdiction,
        tenant: tenant.to_owned(),
    }))
}

/// Runs a stream's work holding its slot, and meanwhile keeps the isolate's
/// lease renewed (whichever of the tenant's streams is awake when a renewal
/// is due sends it).
pub async fn holding(slot: Option<StreamSlot>, work: impl Future<Output = ()>) {
    match slot {
        None => work.await,
        Some(slot) => {
            select(pin!(work), pin!(slot.renew())).await;
        }
    }
}

/// The slot goes back to the pool however the stream ends (also when it
/// was refused after admission, say by a revoked channel), and the lease
/// with it once no stream of the tenant is left in this isolate.
impl Drop for StreamSlot {
    fn drop(&mut self) {
        let sent = POOLS.with(|pools| {
            let mut pools = pools.borrow_mut();
            let pool = pools.get_mut(&self.tenant)?;
            pool.release();
            pool.give_back(now_ms())
        });
        let Some(sent) = sent else {
            forget_if_idle(&self.tenant);
            return;
        };
        let (env, jurisdiction, tenant) =
            (self.env.clone(), self.jurisdiction, self.tenant.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let grant = ask(&env, jurisdiction, &tenant, &sent).await.ok();
            POOLS.with(|pools| {
                if let Some(pool) = pools.borrow_mut().get_mut(&tenant) {
                    pool.renewed(&sent, grant.as_ref(), now_ms());
                }
            });
            forget_if_idle(&tenant);
        });
    }
}

impl StreamSlot {
    async fn renew(&self) {
        loop {
            let now = now_ms();
            let due =
                POOLS.with(|pools| pools.borrow().get(&self.tenant).and_then(Pool::renew_at_ms));
            let wait = due.map_or(RENEW_EVERY_MS, |at| at.saturating_sub(now));
            Delay::from(Duration::from_millis(wait.max(RENEW_POLL_MS))).await;
            let sent = POOLS.with(|pools| {
                pools
                    .borrow_mut()
                    .get_mut(&self.tenant)
                    .and_then(|pool| pool.renewal(now_ms()))
            });
            if let Some(sent) = sent {
                let grant = ask(&self.env, self.jurisdiction, &self.tenant, &sent)
                    .await
                    .ok();
                POOLS.with(|pools| {
                    if let Some(pool) = pools.borrow_mut().get_mut(&self.tenant) {
                        pool.renewed(&sent, grant.as_ref(), now_ms());
                    }
                });
            }
        }
    }
}

async fn ask(
    env: &Env,
    jurisdiction: Option<Jurisdiction>,
    tenant: &str,
    sent: &Sent,
) -> Result<LeaseGrant, Problem> {
    TenantClient::new(env, jurisdiction, tenant)?
        .lease(&sent.ask)
        .await
}

fn with_pool<T>(tenant: &str, limit: u64, f: impl FnOnce(&mut Pool) -> T) -> T {
    POOLS.with(|pools| {
        let mut pools = pools.borrow_mut();
        let pool = pools
            .entry(tenant.to_owned())
            .or_insert_with(|| Pool::new(HOLDER.with(String::clone), limit));
        f(pool)
    })
}

/// Drops a tenant's pool once it holds and owes nothing, so an isolate that
/// serves many tenants over its life keeps only the busy ones.
fn forget_if_idle(tenant: &str) {
    POOLS.with(|pools| {
        let mut pools = pools.borrow_mut();
        if pools.get(tenant).is_some_and(Pool::is_idle) {
            pools.remove(tenant);
        }
    });
}

fn now_ms() -> u64 {
    worker::Date::now().as_millis()
}
