//! `GET /history?after=N`: one page of the channel's history after `after`,
//! as a relay message (see [`crate::relay`]): at least one event when there
//! is one, then more until the page reaches a relay message's size, or a
//! `reset` with the current state when those events are gone. A resuming
//! stream pages its gap in this way, one page per completed write, so a long
//! resume goes at its client's pace.

use super::super::query::{self, pairs, Query};
use super::super::{Call, ProtocolError};

pub const PATH: &str = "/history";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct History {
    pub after: u64,
}

impl History {
    pub fn call(&self) -> Call {
        Call::get(PATH, Query::new().pair("after", &self.after.to_string()))
    }

    pub fn parse(query: &str) -> Result<Self, ProtocolError> {
        match pairs(query).collect::<Vec<_>>().as_slice() {
            [("after", after)] => Ok(History {
                after: query::number("after", after)?,
            }),
            _ => Err(ProtocolError::new("history: expected after=<seq>")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for after in [0, 7, u64::MAX] {
            assert_eq!(
                History::parse(&History { after }.call().query),
                Ok(History { after })
            );
        }
        assert!(History::parse("").is_err());
        assert!(History::parse("after=1&after=2").is_err());
    }
}
