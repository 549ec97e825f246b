//! edgestream: a Server-Sent Events relay that runs as a Cloudflare Worker.
//!
//! Everything that needs no runtime (channel names, tokens, SSE framing,
//! cursors, messages, settings) lives in the `edgestream-core` crate with native
//! unit tests. This crate is the thin workers-rs glue around it, and only
//! exists on `wasm32`: natively it compiles to nothing, so `cargo test` over the
//! workspace never builds the Workers runtime bindings.

#[cfg(target_arch = "wasm32")]
mod edge;
