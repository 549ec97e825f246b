//! `POST /reset`: the object drops its in-memory state and its sockets, as a
//! deploy or an eviction does; the channel's object resets its shards first.
//!
//! Only the development route `POST /dev/reset` sends it, so that a developer
//! (and the test suite) can watch streams survive what production does to
//! objects without deploying. Storage is untouched: the next request starts
//! the object again from it.

use super::super::Call;

pub const PATH: &str = "/reset";

pub fn call() -> Call {
    Call::post(PATH, String::new())
}
