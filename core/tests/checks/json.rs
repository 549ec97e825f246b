//! Reading JSON the way the checks need and `serde_json::Value` cannot: an
//! object's members in document order with duplicates kept, and values as
//! the text they were written as.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// One member of an object: its (unescaped) name and its value's text.
pub type Member = (String, Box<RawValue>);

struct Members(Vec<Member>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> Visitor<'de> for MembersVisitor {
    type Value = Members;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
            members.push(member);
        }
        Ok(Members(members))
    }
}

/// The members of `text` if it is one JSON object, duplicates included.
pub fn members(text: &[u8]) -> Option<Vec<Member>> {
    serde_json::from_slice::<Members>(text).ok().map(|m| m.0)
}

/// The value of the last member called `name`, as `serde_json` keeps it.
pub fn last<'a>(members: &'a [Member], name: &str) -> Option<&'a RawValue> {
    members
        .iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| &**v)
}

/// Whether some name occurs twice.
pub fn has_duplicates(members: &[Member]) -> bool {
    members
        .iter()
        .enumerate()
        .any(|(i, (name, _))| members[..i].iter().any(|(n, _)| n == name))
}

/// Whether `text` is one JSON value (numbers of any size included).
pub fn is_json(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// `text` without the JSON whitespace between tokens, everything else as it
/// was written: what the edge keeps of a publisher's data.
pub fn compact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' | '\r' => continue,
            '"' => {
                out.push('"');
                while let Some(c) = chars.next() {
                    out.push(c);
                    match c {
                        '\\' => out.extend(chars.next()),
                        '"' => break,
                        _ => {}
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}
