//! The runtime-free core of edgestream, a Server-Sent Events relay for the edge.
//!
//! Everything here is plain Rust with no Workers, network, clock or
//! randomness: the current time is always a parameter, and values arrive as
//! strings and bytes that the caller took from its runtime. That border is
//! what lets the same code run in the Worker (wasm32), in the native bridge,
//! and under `cargo test` with no runtime at all, and it is why the security
//! rules (tenant gate, token checks, framing) are tested here, where a test
//! can try to break them directly.
//!
//! - [`problem`]: errors as RFC 9457 problem details with stable codes.
//! - [`channel`]: channel names and the tenant gate.
//! - [`credentials`]: which credential a request presents.
//! - [`api_key`]: API key fingerprints and what a key may do.
//! - [`authority`]: whom a credential acts for (one tenant, or the platform).
//! - [`residency`]: the Durable Object jurisdiction each tenant's objects live in.
//! - [`ticket`]: single-use stream tickets.
//! - [`time`]: instants in RFC 3339.
//! - [`revocation`]: kicks, revocations and the socket tags that find streams.
//! - [`token`]: JWT verification with a per-key algorithm allow-list.
//! - [`keys`]: verification keys (HMAC secret, PEM, JWKS) and their allow-lists.
//! - [`jwks`]: when the Worker refreshes a JWKS fetched from `JWKS_URL`.
//! - [`shards`]: where a channel's next stream attaches (its own object or a shard).
//! - [`hubs`]: how a channel's object counts the streams its isolates' hubs serve.
//! - [`sse`]: Server-Sent Events framing.
//! - [`cursor`]: event ids, in django-eventstream's format.
//! - [`merge`]: one stream's view of its channels: order, gaps, catch-up, ids.
//! - [`message`]: the publish body.
//! - [`protocol`]: the typed requests between the Worker and its Durable Objects.
//! - [`relay`]: batched relay records from a Channel Durable Object to a stream.
//! - [`frames`]: pre-rendered SSE frames for the streams of one channel.
//! - [`history`]: what a channel's bounded history replays and forgets.
//! - [`presence`]: which subjects have streams open on a channel, and when they join and leave.
//! - [`quota`]: per-tenant stream slots, leased to isolates in blocks.
//! - [`config`]: settings from wrangler vars.
//! - [`usage`]: usage data points for Workers Analytics Engine.
#![forbid(unsafe_code)]

pub mod api_key;
pub mod authority;
pub mod channel;
pub mod config;
pub mod credentials;
pub mod cursor;
pub mod frames;
pub mod history;
pub mod hubs;
pub mod jwks;
pub mod keys;
pub mod merge;
pub mod message;
pub mod origin;
mod percent;
pub mod presence;
pub mod problem;
pub mod protocol;
pub mod quota;
pub mod relay;
pub mod residency;
pub mod revocation;
pub mod shards;
pub mod sse;
pub mod ticket;
pub mod time;
pub mod token;
pub mod usage;
