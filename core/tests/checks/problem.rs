//! What every refusal of client or origin input has in common.

use edgestream_core::problem::Problem;

/// No input a client can send yields a 5xx: a refusal is a 4xx problem.
pub fn assert_client_error(problem: &Problem) {
    assert!((400..500).contains(&problem.status), "{problem:?}");
}
