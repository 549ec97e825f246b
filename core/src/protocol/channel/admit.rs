//! `GET /admit?tag=...`: whether the channel's tenant has revoked any of
//! these tags. Asked before a ticket is issued, so that a revoked user or
//! token cannot collect tickets; streams and publishes are checked by the
//! requests that carry their tags.

use super::super::query::{pairs, Query};
use super::super::{Call, ProtocolError};

pub const PATH: &str = "/admit";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admit {
    pub tags: Vec<String>,
}

impl Admit {
    pub fn call(&self) -> Call {
        let query = self
            .tags
            .iter()
            .fold(Query::new(), |query, tag| query.pair("tag", tag));
        Call::get(PATH, query)
    }

    pub fn parse(query: &str) -> Result<Self, ProtocolError> {
        let mut tags = Vec::new();
        for (name, value) in pairs(query) {
            if name != "tag" {
                return Err(ProtocolError::new(format!(
                    "admit: unknown parameter {name}"
                )));
            }
            tags.push(value.to_owned());
        }
        Ok(Admit { tags })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for tags in [vec![], vec!["u:01".to_owned(), "j:ff".to_owned()]] {
            let admit = Admit { tags };
            assert_eq!(Admit::parse(&admit.call().query), Ok(admit));
        }
        assert!(Admit::parse("after=1").is_err());
    }
}
