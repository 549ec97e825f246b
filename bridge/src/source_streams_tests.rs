use super::*;

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn entry(id: &str, fields: &[(&str, &str)]) -> Value {
    Value::Array(vec![
        bulk(id),
        Value::Array(
            fields
                .iter()
                .flat_map(|(k, v)| [bulk(k), bulk(v)])
                .collect(),
        ),
    ])
}

#[test]
fn read_reply() {
    let reply = Value::Array(vec![Value::Array(vec![
        bulk("events"),
        Value::Array(vec![
            entry("1-0", &[("channel", "c"), ("event", "e"), ("data", "1")]),
            Value::Array(vec![bulk("2-0"), Value::Nil]),
        ]),
    ])]);
    let entries = parse_read_reply(reply).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].id, "1-0");
    assert_eq!(
        entries[0].fields.as_ref().unwrap()[1],
        (b"event".to_vec(), b"e".to_vec())
    );
    assert_eq!(
        entries[1],
        RawEntry {
            id: "2-0".into(),
            fields: None
        }
    );
    assert!(parse_read_reply(Value::Nil).unwrap().is_empty());
    let resp3 = Value::Map(vec![(
        bulk("events"),
        Value::Array(vec![entry("3-0", &[("message", "{}")])]),
    )]);
    assert_eq!(parse_read_reply(resp3).unwrap()[0].id, "3-0");
    assert!(parse_read_reply(Value::Int(1)).is_err());
}

#[test]
fn autoclaim_reply() {
    let reply = Value::Array(vec![
        bulk("0-0"),
        Value::Array(vec![entry("5-1", &[("message", "x")])]),
        Value::Array(vec![bulk("4-0")]),
    ]);
    let (cursor, entries) = parse_autoclaim_reply(reply).unwrap();
    assert_eq!(cursor, "0-0");
    assert_eq!(entries[0].id, "5-1");
    assert!(parse_autoclaim_reply(Value::Nil).is_err());
}

#[test]
fn entry_keys_are_stable_and_valid() {
    assert_eq!(
        entry_key("events", "1712345678901-0"),
        "events:1712345678901-0"
    );
    assert_eq!(entry_key("has space", "1-0"), "1-0");
    assert_eq!(entry_key(&"s".repeat(200), "1-0"), "1-0");
}
