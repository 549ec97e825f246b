//! Structured log lines: one JSON object per line, `level` and `msg` first.
//!
//! Lines never carry tokens, event data or channel names (which carry tenant
//! ids): callers pass codes, counts and the relay's own messages. A runtime
//! error's text is logged only where it cannot contain client input (object
//! and storage failures), never for a client's request body.

use serde_json::{json, Map, Value};

pub fn info(msg: &str, fields: Value) {
    worker::console_log!("{}", line("info", msg, fields));
}

pub fn warn(msg: &str, fields: Value) {
    worker::console_warn!("{}", line("warn", msg, fields));
}

/// An error with its detail.
pub fn error(msg: &str, detail: &str) {
    worker::console_error!("{}", line("error", msg, json!({ "detail": detail })));
}

fn line(level: &str, msg: &str, fields: Value) -> String {
    let mut object = Map::new();
    object.insert("level".into(), level.into());
    object.insert("msg".into(), msg.into());
    if let Value::Object(fields) = fields {
        object.extend(fields);
    }
    Value::Object(object).to_string()
}
