//! Reaching Valkey: the client built from `VALKEY_URL` and the TLS files,
//! and errors explained in the operator's terms.
//!
//! Managed Valkey and Redis services speak TLS (`rediss://`) and give each
//! application an ACL user (`rediss://user:password@host:port`). The bridge
//! verifies the server's certificate against the system roots or the CA file
//! given (`VALKEY_CA_FILE`) and can present a client certificate
//! (`VALKEY_CLIENT_CERT`, `VALKEY_CLIENT_KEY`). Certificate checks cannot be
//! turned off: redis-rs's `#insecure` URL fragment is refused.
//!
//! Errors fall in two kinds. A certificate or password that the server
//! refuses will be refused again, so at start-up it ends the process with a
//! message that says what to fix ([`probe`]); later, when a credential may
//! have been rotated under a running bridge, it is retried like everything
//! else. Anything else (refused connection, timeout, restart) is transient.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ClientTlsConfig, ErrorKind, RedisError, TlsCertificates};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The optional TLS files.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    fn any(&self) -> bool {
        self.ca.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }
}

/// The client for `url`, with the TLS files read and parsed now, so a wrong
/// path or a malformed PEM stops the start with its name.
pub fn client(url: &str, tls: &TlsFiles) -> Result<redis::Client, String> {
    let scheme = url.split("://").next().unwrap_or_default();
    let secure = matches!(scheme, "rediss" | "valkeys");
    if !matches!(scheme, "redis" | "rediss" | "valkey" | "valkeys") || !url.contains("://") {
        return Err(format!(
            "VALKEY_URL must be redis:// or rediss:// (TLS), not {}",
            redacted(url)
        ));
    }
    if url.contains('#') {
        return Err(
            "VALKEY_URL: a #fragment is not accepted (#insecure would turn certificate checks off)"
                .into(),
        );
    }
    if !secure {
        if tls.any() {
            return Err("VALKEY_CA_FILE, VALKEY_CLIENT_CERT and VALKEY_CLIENT_KEY need a rediss:// VALKEY_URL".into());
        }
        return redis::Client::open(url).map_err(|e| format!("VALKEY_URL is not usable: {e}"));
    }
    let client_tls = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read(cert, "VALKEY_CLIENT_CERT")?,
            client_key: read(key, "VALKEY_CLIENT_KEY")?,
        }),
        (None, None) => None,
        _ => return Err("VALKEY_CLIENT_CERT and VALKEY_CLIENT_KEY go together".into()),
    };
    let root_cert = tls
        .ca
        .as_deref()
        .map(|ca| read(ca, "VALKEY_CA_FILE"))
        .transpose()?;
    redis::Client::build_with_tls(
        url,
        TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| format!("VALKEY_URL with its TLS files is not usable: {e}"))
}

fn read(path: &Path, name: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{name}: cannot read {}: {e}", path.display()))
}

/// A multiplexed connection with the bridge's timeouts. `response` must be
/// longer than any blocking command sent on it.
pub async fn connect(
    client: &redis::Client,
    response: Duration,
) -> Result<MultiplexedConnection, RedisError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(response));
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// What an error means for the operator.
#[derive(Debug, PartialEq)]
pub enum Trouble {
    /// The configuration is wrong (certificate, password, TLS on one side
    /// only): retrying cannot help.
    Refused(String),
    /// Anything else; retried with backoff.
    Transient(String),
}

impl std::fmt::Display for Trouble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trouble::Refused(text) | Trouble::Transient(text) => f.write_str(text),
        }
    }
}

/// Explains a Valkey error: TLS failures by their cause, refused
/// credentials and permissions by what to change.
pub fn explain(err: &RedisError) -> Trouble {
    if let Some(tls) = rustls_error(err) {
        return Trouble::Refused(explain_tls(tls));
    }
    match err.kind() {
        ErrorKind::AuthenticationFailed => {
            return Trouble::Refused(format!(
                "Valkey refused the user name or password in VALKEY_URL ({err})"
            ))
        }
        ErrorKind::Server(redis::ServerErrorKind::NoPerm) => {
            return Trouble::Refused(format!(
                "the Valkey user may not do this ({err}); its ACL must allow the \
                 Pub/Sub channels (&channel), the stream keys (~key) and the commands the bridge uses"
            ))
        }
        _ => {}
    }
    match err.code() {
        Some("WRONGPASS") | Some("NOAUTH") => Trouble::Refused(format!(
            "Valkey refused the user name or password in VALKEY_URL ({err})"
        )),
        _ => Trouble::Transient(err.to_string()),
    }
}

fn rustls_error(err: &RedisError) -> Option<&rustls::Error> {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    fn inside<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // redis-rs keeps an I/O error behind an Arc, and an io::Error's
        // `source` skips the error it wraps: look inside both.
        if let Some(shared) = e.downcast_ref::<Shared>() {
            return inside(&**shared);
        }
        e.downcast_ref::<std::io::Error>()?
            .get_ref()
            .and_then(|inner| inside(inner))
    }
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(tls) = inside(e) {
            return Some(tls);
        }
        next = e.source();
    }
    None
}

fn explain_tls(err: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, CertificateError as Cert, Error};
    let hint = match err {
        Error::InvalidCertificate(Cert::UnknownIssuer) => {
            "the server's certificate is not signed by a CA this bridge trusts: \
             give its CA with VALKEY_CA_FILE (the system roots are used otherwise)"
        }
        Error::InvalidCertificate(Cert::NotValidForName | Cert::NotValidForNameContext { .. }) => {
            "the server's certificate does not name the host in VALKEY_URL"
        }
        Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            "the server's certificate has expired"
        }
        Error::InvalidCertificate(_) => "the server's certificate is not acceptable",
        Error::AlertReceived(Alert::CertificateRequired) => {
            "the server requires a client certificate: set VALKEY_CLIENT_CERT and VALKEY_CLIENT_KEY"
        }
        Error::AlertReceived(
            Alert::BadCertificate | Alert::UnknownCA | Alert::CertificateUnknown,
        ) => "the server refused the client certificate (VALKEY_CLIENT_CERT)",
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the server does not speak TLS on this port: use redis:// or the server's TLS port"
        }
        _ => "the TLS handshake with Valkey failed",
    };
    format!("Valkey TLS: {hint} ({err})")
}

/// Connects once and PINGs, at start-up. `Err` only when the configuration
/// is refused; a server that is merely unreachable is left to the sources,
/// which retry.
pub async fn probe(client: &redis::Client) -> Result<(), String> {
    let attempt = async {
        let mut conn = connect(client, CONNECT_TIMEOUT).await?;
        redis::cmd("PING")
            .query_async::<redis::Value>(&mut conn)
            .await
            .map(|_| ())
    };
    match tokio::time::timeout(CONNECT_TIMEOUT * 2, attempt).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => match explain(&err) {
            Trouble::Refused(text) => Err(text),
            Trouble::Transient(text) => {
                tracing::warn!(error = %text, "Valkey is not reachable yet; the sources will keep trying");
                Ok(())
            }
        },
        Err(_) => {
            tracing::warn!("Valkey did not answer in time; the sources will keep trying");
            Ok(())
        }
    }
}

/// The database number of the URL, when one is given.
pub fn database(client: &redis::Client) -> i64 {
    client.get_connection_info().redis_settings().db()
}

/// The URL without its password, for the log.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_the_log() {
        assert_eq!(
            redacted("redis://u:secret@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert_eq!(redacted("rediss://:secret@h:6379"), "rediss://:***@h:6379");
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }

    #[test]
    fn urls_and_files_are_checked_before_anything_connects() {
        let none = TlsFiles::default();
        assert!(client("redis://127.0.0.1:6379", &none).is_ok());
        assert!(client("rediss://user:pass@127.0.0.1:6380/2", &none).is_ok());
        let err = client("http://u:pw@127.0.0.1:6379", &none).unwrap_err();
        assert!(err.contains("redis://") && !err.contains("pw"), "{err}");
        let err = client("rediss://127.0.0.1:6380/#insecure", &none).unwrap_err();
        assert!(err.contains("#insecure"), "{err}");
        let ca = TlsFiles {
            ca: Some("/nonexistent/ca.pem".into()),
            ..TlsFiles::default()
        };
        assert!(client("redis://127.0.0.1:6379", &ca)
            .unwrap_err()
            .contains("rediss://"));
        let err = client("rediss://127.0.0.1:6380", &ca).unwrap_err();
        assert!(
            err.contains("VALKEY_CA_FILE: cannot read /nonexistent/ca.pem"),
            "{err}"
        );
        let half = TlsFiles {
            client_cert: Some("/c.pem".into()),
            ..TlsFiles::default()
        };
        assert!(client("rediss://h:1", &half)
            .unwrap_err()
            .contains("go together"));
    }

    #[test]
    fn a_malformed_ca_file_is_named() {
        let path =
            std::env::temp_dir().join(format!("edgestream-bad-ca-{}.pem", std::process::id()));
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let files = TlsFiles {
            ca: Some(path.clone()),
            ..TlsFiles::default()
        };
        let err = client("rediss://127.0.0.1:6380", &files).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("TLS files"), "{err}");
    }

    #[test]
    fn tls_failures_say_what_to_fix() {
        use rustls::{AlertDescription, CertificateError, Error};
        let wrap =
            |e: Error| RedisError::from(std::io::Error::new(std::io::ErrorKind::InvalidData, e));
        let text = |e| match explain(&wrap(e)) {
            Trouble::Refused(text) => text,
            other => panic!("{other:?}"),
        };
        assert!(
            text(Error::InvalidCertificate(CertificateError::UnknownIssuer))
                .contains("VALKEY_CA_FILE")
        );
        assert!(
            text(Error::AlertReceived(AlertDescription::CertificateRequired))
                .contains("VALKEY_CLIENT_CERT")
        );
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(explain(&refused), Trouble::Transient(_)));
        let auth = RedisError::from((
            ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert!(matches!(explain(&auth), Trouble::Refused(t) if t.contains("VALKEY_URL")));
    }
}
