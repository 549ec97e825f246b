//! Generators shared by the properties: valid values of the contract's
//! grammars, hostile text, near-valid mutations of a valid value, and JSON
//! written the many ways publishers write it.

use proptest::prelude::*;
use proptest::sample::Index;

/// Tenants that recur, so that generated channels and tokens share tenants
/// often enough for the gate to be tested on both sides.
pub const TENANTS: [&str; 3] = [
    "0b9c2f4e-8a1d-4c3b-9e7f-6a5d4c3b2a19",
    "11111111-2222-4333-8444-555555555555",
    "00000000-0000-0000-0000-000000000000",
];

/// Pieces that break parsers: separators of every format here, escapes,
/// line breaks, NUL, whitespace, non-ASCII, and the start of other tokens.
const HOSTILE: &[&str] = &[
    ":",
    ",",
    ".",
    "-",
    "_",
    "%",
    "%3A",
    "%3a",
    "%2C",
    "%25",
    "%zz",
    "%C3",
    "%C3%A9",
    "\r",
    "\n",
    "\r\n",
    "\0",
    " ",
    "\t",
    "\u{b}",
    "\u{c}",
    "\u{85}",
    "\u{2028}",
    "\u{feff}",
    "é",
    "É",
    "ß",
    "😀",
    "\u{10ffff}",
    "\"",
    "\\",
    "/",
    "+",
    "=",
    "&",
    "?",
    "#",
    "{",
    "}",
    "[",
    "]",
    "data:",
    "id:",
    "event:",
    "retry:",
    "\n\n",
    "stream-",
    "Bearer ",
    "null",
    "0",
    "18446744073709551616",
    "-1",
    "+1",
    "AAAA",
    "eyJ",
];

/// One fragment: a hostile piece, any character, or a character of the
/// grammars' own alphabets.
pub fn fragment() -> BoxedStrategy<String> {
    prop_oneof![
        4 => proptest::sample::select(HOSTILE).prop_map(str::to_owned),
        2 => any::<char>().prop_map(String::from),
        4 => "[a-zA-Z0-9]{1,4}",
        1 => proptest::sample::select(&TENANTS[..]).prop_map(str::to_owned),
    ]
    .boxed()
}

/// Text made of fragments, up to `max` of them.
pub fn hostile(max: usize) -> BoxedStrategy<String> {
    proptest::collection::vec(fragment(), 0..=max)
        .prop_map(|parts| parts.concat())
        .boxed()
}

/// One edit of a text.
#[derive(Clone, Debug)]
enum Edit {
    Insert(Index, String),
    Replace(Index, String),
    Delete(Index),
    FlipCase(Index),
    FlipCaseAll,
    Escape(Index),
    Repeat(u8),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), fragment()).prop_map(|(i, f)| Edit::Insert(i, f)),
        3 => (any::<Index>(), fragment()).prop_map(|(i, f)| Edit::Replace(i, f)),
        2 => any::<Index>().prop_map(Edit::Delete),
        2 => any::<Index>().prop_map(Edit::FlipCase),
        1 => Just(Edit::FlipCaseAll),
        2 => any::<Index>().prop_map(Edit::Escape),
        1 => (2..6u8).prop_map(Edit::Repeat),
        1 => any::<Index>().prop_map(Edit::Truncate),
    ]
}

/// `valid` after one to three edits: near-valid text, which is where
/// parsers disagree with their grammar.
pub fn mutated(valid: impl Strategy<Value = String> + 'static) -> BoxedStrategy<String> {
    (valid, proptest::collection::vec(edit(), 1..=3))
        .prop_map(|(mut text, edits)| {
            for edit in edits {
                text = apply(&text, &edit);
            }
            text
        })
        .boxed()
}

fn apply(text: &str, edit: &Edit) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: &Index, extra: usize| {
        if chars.is_empty() && extra == 0 {
            None
        } else {
            Some(i.index(chars.len() + extra))
        }
    };
    let join = |parts: &[char]| parts.iter().collect::<String>();
    match edit {
        Edit::Insert(i, piece) => {
            let i = at(i, 1).unwrap_or(0);
            format!("{}{piece}{}", join(&chars[..i]), join(&chars[i..]))
        }
        Edit::Replace(i, piece) => match at(i, 0) {
            Some(i) => format!("{}{piece}{}", join(&chars[..i]), join(&chars[i + 1..])),
            None => piece.clone(),
        },
        Edit::Delete(i) => match at(i, 0) {
            Some(i) => format!("{}{}", join(&chars[..i]), join(&chars[i + 1..])),
            None => String::new(),
        },
        Edit::FlipCase(i) => match at(i, 0) {
            Some(i) => {
                let c = chars[i];
                let flipped: String = if c.is_lowercase() {
                    c.to_uppercase().collect()
                } else {
                    c.to_lowercase().collect()
                };
                format!("{}{flipped}{}", join(&chars[..i]), join(&chars[i + 1..]))
            }
            None => String::new(),
        },
        Edit::FlipCaseAll => {
            if text.chars().any(char::is_lowercase) {
                text.to_uppercase()
            } else {
                text.to_lowercase()
            }
        }
        Edit::Escape(i) => match at(i, 0) {
            Some(i) => {
                let mut utf8 = [0; 4];
                let escaped: String = chars[i]
                    .encode_utf8(&mut utf8)
                    .bytes()
                    .map(|b| format!("%{b:02X}"))
                    .collect();
                format!("{}{escaped}{}", join(&chars[..i]), join(&chars[i + 1..]))
            }
            None => String::new(),
        },
        Edit::Repeat(n) => text.repeat(usize::from(*n)),
        Edit::Truncate(i) => join(&chars[..at(i, 1).unwrap_or(0)]),
    }
}

/// A sequence number as text: digits, or what `u64::from_str` and other
/// readers also take (signs, spaces, other digits, overflow, fractions).
pub fn sequence_text() -> BoxedStrategy<String> {
    prop_oneof![
        3 => "[0-9]{1,20}",
        2 => proptest::sample::select(&[
            "+1", "-1", " 1", "1 ", "01", "1.0", "1e3", "0x10", "1_000", "18446744073709551616",
            "\u{661}", "", "\u{ff11}",
        ][..])
        .prop_map(str::to_owned),
    ]
    .boxed()
}

/// A payload size up to `max`: small, or in the bands where batches of a
/// few events cross a relay message's size.
pub fn size(max: usize) -> BoxedStrategy<usize> {
    let bands = [
        1..=1_000,
        30_000..=90_000,
        120_000..=140_000,
        200_000..=300_000,
    ];
    let reachable: Vec<BoxedStrategy<usize>> = bands
        .into_iter()
        .filter(|band| *band.start() <= max)
        .map(|band| (*band.start()..=(*band.end()).min(max)).boxed())
        .collect();
    proptest::strategy::Union::new(reachable).boxed()
}

pub fn prefix() -> BoxedStrategy<String> {
    "[a-z][a-z0-9-]{0,63}".boxed()
}

pub fn uuid() -> BoxedStrategy<String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".boxed()
}

/// A tenant from [`TENANTS`] or any other.
pub fn tenant() -> BoxedStrategy<String> {
    prop_oneof![
        3 => proptest::sample::select(&TENANTS[..]).prop_map(str::to_owned),
        1 => uuid(),
    ]
    .boxed()
}

pub fn resource() -> BoxedStrategy<String> {
    "[A-Za-z0-9._-]{1,128}".boxed()
}

/// A valid channel name's three parts.
pub fn channel_parts() -> BoxedStrategy<(String, String, String)> {
    (prefix(), tenant(), resource()).boxed()
}

/// A valid channel name.
pub fn channel() -> BoxedStrategy<String> {
    channel_parts()
        .prop_map(|(p, t, r)| format!("{p}:{t}:{r}"))
        .boxed()
}

/// A valid, a near-valid or a hostile channel name.
pub fn any_channel() -> BoxedStrategy<String> {
    prop_oneof![
        3 => channel(),
        3 => mutated(channel()),
        1 => hostile(8),
    ]
    .boxed()
}

/// JSON's insignificant whitespace, mostly none.
pub fn ws() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just(String::new()),
        1 => "[ \t\r\n]{1,3}",
    ]
    .boxed()
}

/// A JSON number as publishers spell it (leading minus, fractions with
/// trailing zeros, exponents of either case, out of `f64` range).
pub fn json_number() -> BoxedStrategy<String> {
    "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{1,4})?([eE][+-]?[0-9]{1,3})?".boxed()
}

/// A JSON string literal holding text with every kind of escape.
pub fn json_string() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        4 => hostile(3).prop_map(|text| {
            let quoted = serde_json::to_string(&text).expect("a string serializes");
            quoted[1..quoted.len() - 1].to_owned()
        }),
        1 => proptest::sample::select(&["\\u00e9", "\\/", "\\ud83d\\ude00", "\\u2028", "\\u0000", " \\\" "][..])
            .prop_map(str::to_owned),
    ];
    proptest::collection::vec(piece, 0..4)
        .prop_map(|pieces| format!("\"{}\"", pieces.concat()))
        .boxed()
}

/// Any JSON value as text, with whitespace between tokens and duplicate
/// object members now and then.
pub fn json_text() -> BoxedStrategy<String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("false".to_owned()),
        json_number(),
        json_string(),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec((ws(), inner.clone(), ws()), 0..4).prop_map(|items| {
                let items: Vec<String> = items.into_iter().map(|(a, v, b)| a + &v + &b).collect();
                format!("[{}]", items.join(","))
            }),
            proptest::collection::vec((ws(), json_string(), ws(), ws(), inner, ws()), 0..4)
                .prop_map(|members| {
                    let members: Vec<String> = members
                        .into_iter()
                        .map(|(a, k, b, c, v, d)| format!("{a}{k}{b}:{c}{v}{d}"))
                        .collect();
                    format!("{{{}}}", members.join(","))
                }),
        ]
    })
    .boxed()
}

/// An object's members, written with whitespace around every token.
pub fn object(members: &[(String, String)], ws: &[String]) -> String {
    let mut pads = ws.iter().cycle();
    let mut pad = || pads.next().cloned().unwrap_or_default();
    let members: Vec<String> = members
        .iter()
        .map(|(name, value)| {
            let name = serde_json::to_string(name).expect("a string serializes");
            format!("{}{name}{}:{}{value}{}", pad(), pad(), pad(), pad())
        })
        .collect();
    format!("{{{}}}", members.join(","))
}

/// A JSON string literal of `text`.
pub fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}
