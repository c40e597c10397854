//! Delivery over SMTP: [`SmtpMailer`], over lettre's asynchronous Tokio transport and rustls
//! (aws-lc-rs, the workspace's one TLS provider).
//!
//! The server is named by an [`SmtpUrl`]:
//!
//! | URL | connection | default port |
//! |---|---|---|
//! | `smtp://[user[:password]@]host[:port]` | plain, upgraded with STARTTLS when the server offers it | 25 |
//! | `smtp+starttls://...` | plain, then STARTTLS, required: no mail in clear | 587 |
//! | `smtps://...` | TLS from the first byte (implicit TLS) | 465 |
//!
//! User and password are percent-decoded (`p%40ss` is `p@ss`); the password may also come
//! separately ([`SmtpUrl::with_password`], e.g. from a file). A password never crosses the
//! network in clear: with credentials, `smtp://` requires STARTTLS as `smtp+starttls://` does.
//! Certificates are verified against the Mozilla roots (webpki-roots) and any CA added with
//! [`SmtpOptions::add_ca_pem`] (a private mail server's).
//!
//! Errors: a connection refused or cut, a timeout, a TLS failure, a missing STARTTLS or a 4xx
//! reply is [`MailError::Transient`] (the message is fine, the way to the server is not: worth
//! trying again later); a 5xx reply or an address the server or lettre refuses is
//! [`MailError::Permanent`]. No error, `Debug` or `Display` output shows the password.

use std::{fmt, str::FromStr, time::Duration};

use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        Error as SmtpError,
        authentication::{Credentials, Mechanism},
        client::{Certificate, Tls, TlsParameters},
        extension::ClientId,
    },
};
use secrecy::{ExposeSecret as _, SecretString};

use super::{Mail, MailError, MailFuture, Mailer};

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: STARTTLS when the server offers it, else plain (a local relay). With
    /// credentials, STARTTLS is required.
    Opportunistic,
    /// `smtp+starttls://`: STARTTLS required.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    ImplicitTls,
}

impl SmtpSecurity {
    fn scheme(self) -> &'static str {
        match self {
            Self::Opportunistic => "smtp",
            Self::StartTls => "smtp+starttls",
            Self::ImplicitTls => "smtps",
        }
    }

    /// The port used when the URL names none: 25, 587 or 465.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Opportunistic => 25,
            Self::StartTls => 587,
            Self::ImplicitTls => 465,
        }
    }
}

/// Why an SMTP URL was refused. Its message names the problem, never the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SMTP URL: {0}")]
pub struct SmtpUrlError(String);

/// Where and how to deliver: `smtp://`, `smtp+starttls://` or `smtps://`, see the
/// [module docs](self). `Debug` and `Display` never show the password.
///
/// ```
/// use bulwark::mail::smtp::{SmtpSecurity, SmtpUrl};
///
/// let url: SmtpUrl = "smtps://mailer%40example.com:s3cr%2Ft@mail.example.com".parse().unwrap();
/// assert_eq!(url.security(), SmtpSecurity::ImplicitTls);
/// assert_eq!((url.host(), url.port()), ("mail.example.com", 465));
/// assert_eq!(url.user(), Some("mailer@example.com"));
/// assert!(url.has_password());
/// assert_eq!(url.to_string(), "smtps://mailer%40example.com:***@mail.example.com:465");
/// ```
#[derive(Clone)]
pub struct SmtpUrl {
    security: SmtpSecurity,
    host: String,
    port: u16,
    user: Option<String>,
    password: Option<SecretString>,
}

impl SmtpUrl {
    /// Parses `smtp://`, `smtp+starttls://` or `smtps://` `[user[:password]@]host[:port]`.
    ///
    /// # Errors
    /// An unknown scheme, a missing or malformed host, a bad port, a path, query or fragment,
    /// bad percent-encoding, or a password without a user name.
    pub fn parse(url: &str) -> Result<Self, SmtpUrlError> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(SmtpUrlError(
                "expected smtp://, smtp+starttls:// or smtps:// followed by the host".to_owned(),
            ));
        };
        let security = match scheme.to_ascii_lowercase().as_str() {
            "smtp" => SmtpSecurity::Opportunistic,
            "smtp+starttls" => SmtpSecurity::StartTls,
            "smtps" => SmtpSecurity::ImplicitTls,
            _ => {
                // Only a short word is echoed (`http`, `smtp+tls`): a long or odd one might be
                // a secret pasted in the wrong place.
                let shown = if scheme.len() <= 10
                    && scheme.chars().all(|c| c.is_ascii_lowercase() || c == '+')
                {
                    format!("unsupported scheme {scheme:?}")
                } else {
                    "unsupported scheme".to_owned()
                };
                return Err(SmtpUrlError(format!(
                    "{shown}: expected smtp://, smtp+starttls:// or smtps://"
                )));
            }
        };
        // The host follows the last `@`: a password with an unencoded `@`, `/`, `?` or `#`
        // still ends up in the password, and nothing after the last `@` is secret.
        let (userinfo, hostpart) = match rest.rfind('@') {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (authority, path) = match hostpart.find(['/', '?', '#']) {
            Some(i) => hostpart.split_at(i),
            None => (hostpart, ""),
        };
        if !path.is_empty() && path != "/" {
            return Err(SmtpUrlError(format!(
                "unexpected {path:?} after the host (an SMTP URL has no path, query or fragment)"
            )));
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            None => security.default_port(),
            Some(port) => match port.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => {
                    return Err(SmtpUrlError(format!(
                        "bad port {port:?} (expected 1 to 65535)"
                    )));
                }
            },
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                let user = percent_decode(user).ok_or_else(|| {
                    SmtpUrlError("bad percent-encoding in the user name".to_owned())
                })?;
                let password = match password {
                    None => None,
                    Some(password) => Some(percent_decode(password).ok_or_else(|| {
                        SmtpUrlError("bad percent-encoding in the password".to_owned())
                    })?),
                };
                if user.is_empty() {
                    if password.as_deref().is_some_and(|p| !p.is_empty()) {
                        return Err(SmtpUrlError("a password without a user name".to_owned()));
                    }
                    (None, None)
                } else {
                    (Some(user), password.map(SecretString::from))
                }
            }
        };
        Ok(Self {
            security,
            host,
            port,
            user,
            password,
        })
    }

    /// The same URL with this password (e.g. read from `smtp_password_file`), replacing any in
    /// the URL.
    #[must_use]
    pub fn with_password(mut self, password: SecretString) -> Self {
        self.password = Some(password);
        self
    }

    /// How the connection is secured.
    pub fn security(&self) -> SmtpSecurity {
        self.security
    }

    /// The server's host name or IP address (IPv6 without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The server's port (the scheme's default when the URL names none).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The user name to authenticate as, percent-decoded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Whether a password is set (in the URL or by [`Self::with_password`]).
    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }
}

impl FromStr for SmtpUrl {
    type Err = SmtpUrlError;

    fn from_str(url: &str) -> Result<Self, SmtpUrlError> {
        Self::parse(url)
    }
}

impl fmt::Display for SmtpUrl {
    /// The URL with the password as `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.security.scheme())?;
        if let Some(user) = &self.user {
            write!(f, "{}", percent_encode(user))?;
            if self.password.is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

fn split_host_port(authority: &str) -> Result<(String, Option<&str>), SmtpUrlError> {
    if authority.is_empty() {
        return Err(SmtpUrlError("no host".to_owned()));
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((ip, after)) = rest.split_once(']') else {
            return Err(SmtpUrlError("unclosed [ in the host".to_owned()));
        };
        if ip.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(SmtpUrlError(format!("bad IPv6 address {ip:?}")));
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(|| {
                SmtpUrlError(format!("unexpected {after:?} after the IPv6 address"))
            })?),
        };
        return Ok((ip.to_owned(), port));
    }
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    let valid = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if !valid {
        return Err(SmtpUrlError(format!("bad host {host:?}")));
    }
    Ok((host.to_ascii_lowercase(), port))
}

/// `%XX` escapes decoded; `None` for a bad escape or bytes that are not UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Settings of an [`SmtpMailer`] besides its URL.
///
/// ```
/// use std::time::Duration;
/// use bulwark::mail::smtp::SmtpOptions;
///
/// let options = SmtpOptions::default()
///     .timeout(Duration::from_secs(5))
///     .hello_name("app.example.com");
/// ```
#[derive(Clone)]
pub struct SmtpOptions {
    timeout: Duration,
    send_timeout: Duration,
    ca_pems: Vec<Vec<u8>>,
    hello_name: Option<String>,
}

impl Default for SmtpOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            ca_pems: Vec::new(),
            hello_name: None,
        }
    }
}

impl fmt::Debug for SmtpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpOptions")
            .field("timeout", &self.timeout)
            .field("send_timeout", &self.send_timeout)
            .field("extra_ca_certificates", &self.ca_pems.len())
            .field("hello_name", &self.hello_name)
            .finish()
    }
}

impl SmtpOptions {
    /// How long to wait for the TCP connection to the server (default 10 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one whole delivery may take, from connecting to the server's last reply, its
    /// greeting and the TLS handshake included (default 60 s). lettre's asynchronous transport
    /// bounds only the connection by itself: this is what stops a server that accepts the
    /// connection and then says nothing.
    #[must_use]
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// Also trusts the CA certificate(s) of this PEM (a private mail server's), besides the
    /// Mozilla roots.
    #[must_use]
    pub fn add_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pems.push(pem.into());
        self
    }

    /// The name this client gives in EHLO (default the address literal `[127.0.0.1]`); some
    /// servers want the sending host's real domain.
    #[must_use]
    pub fn hello_name(mut self, name: impl Into<String>) -> Self {
        self.hello_name = Some(name.into());
        self
    }
}

const CERTIFICATE_PEM: &[u8] = b"-----BEGIN CERTIFICATE-----";

/// A [`Mailer`] over SMTP: one connection per message (the queue's worker sends them one at a
/// time), TLS as the [`SmtpUrl`] says, errors sorted into transient and permanent.
///
/// ```no_run
/// # async fn demo() -> Result<(), bulwark::mail::MailError> {
/// use bulwark::mail::{Mail, Mailer, smtp::{SmtpMailer, SmtpOptions}};
///
/// let url = "smtp+starttls://bulwark%40example.com@mail.example.com".parse().expect("url");
/// let mailer = SmtpMailer::new(url, SmtpOptions::default())?;
/// let mail = Mail {
///     to: "user@example.com".into(),
///     subject: "Hello".into(),
///     text: "Hello!".into(),
///     html: "<p>Hello!</p>".into(),
/// };
/// mailer.send("bulwark@example.com", &mail).await
/// # }
/// ```
pub struct SmtpMailer {
    url: SmtpUrl,
    options: SmtpOptions,
    transport: AsyncSmtpTransport<Tokio1Executor>,
}

impl fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("url", &self.url)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// A mailer delivering to `url`. Nothing is connected yet: each [`Mailer::send`] connects.
    ///
    /// # Errors
    /// [`MailError::Permanent`] for a configuration that can never work: a CA PEM holding no
    /// certificate, a password without a user name, a TLS setup rustls refuses.
    pub fn new(url: SmtpUrl, options: SmtpOptions) -> Result<Self, MailError> {
        if url.user.is_none() && url.password.is_some() {
            return Err(MailError::Permanent(
                "SMTP configuration: a password without a user name".to_owned(),
            ));
        }
        let tls_parameters = || -> Result<TlsParameters, MailError> {
            let mut builder = TlsParameters::builder(url.host.clone());
            for pem in &options.ca_pems {
                // lettre takes a PEM without any certificate as an empty list.
                if !pem
                    .windows(CERTIFICATE_PEM.len())
                    .any(|w| w == CERTIFICATE_PEM)
                {
                    return Err(MailError::Permanent(
                        "SMTP configuration: the CA PEM holds no certificate".to_owned(),
                    ));
                }
                let certificate = Certificate::from_pem(pem).map_err(|e| {
                    MailError::Permanent(format!("SMTP configuration: the CA certificate: {e}"))
                })?;
                builder = builder.add_root_certificate(certificate);
            }
            builder
                .build_rustls()
                .map_err(|e| MailError::Permanent(format!("SMTP configuration: TLS: {e}")))
        };
        let tls = match url.security {
            // A password is never sent in clear: with credentials, STARTTLS is required.
            SmtpSecurity::Opportunistic if url.user.is_none() => {
                Tls::Opportunistic(tls_parameters()?)
            }
            SmtpSecurity::Opportunistic | SmtpSecurity::StartTls => {
                Tls::Required(tls_parameters()?)
            }
            SmtpSecurity::ImplicitTls => Tls::Wrapper(tls_parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.clone())
            .port(url.port)
            .tls(tls)
            .timeout(Some(options.timeout));
        if let Some(name) = &options.hello_name {
            builder = builder.hello_name(ClientId::Domain(name.clone()));
        }
        if let Some(user) = &url.user {
            let password = url
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            builder = builder
                .credentials(Credentials::new(user.clone(), password))
                .authentication(vec![Mechanism::Plain, Mechanism::Login]);
        }
        Ok(Self {
            transport: builder.build(),
            url,
            options,
        })
    }

    /// The server this mailer delivers to.
    pub fn url(&self) -> &SmtpUrl {
        &self.url
    }

    fn classify(&self, error: &SmtpError) -> MailError {
        let text = self.redact(&error_text(error));
        let server = format!("{}:{}", self.url.host, self.url.port);
        if error.is_permanent() {
            MailError::Permanent(format!("SMTP server {server} refused: {text}"))
        } else if error.is_transient() {
            MailError::Transient(format!("SMTP server {server} deferred: {text}"))
        } else if error.is_timeout() {
            MailError::Transient(format!("SMTP server {server}: timed out: {text}"))
        } else if error.is_tls() {
            MailError::Transient(format!("SMTP server {server}: TLS failed: {text}"))
        } else if error.is_client() && text.to_ascii_lowercase().contains("starttls") {
            MailError::Transient(format!(
                "SMTP server {server} does not offer STARTTLS, which {} requires: {text}",
                if self.url.security == SmtpSecurity::StartTls {
                    "smtp+starttls://"
                } else {
                    "a URL with credentials"
                }
            ))
        } else {
            MailError::Transient(format!("SMTP server {server}: {text}"))
        }
    }

    /// The password removed from a text a server or library produced, in case one echoed it.
    fn redact(&self, text: &str) -> String {
        match &self.url.password {
            Some(password) if password.expose_secret().len() >= 3 => {
                text.replace(password.expose_secret(), "***")
            }
            _ => text.to_owned(),
        }
    }
}

/// An error and its sources, on one line, without the repetitions of wrapped errors
/// ("Connection error: Connection error: ...").
fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

impl Mailer for SmtpMailer {
    fn send<'a>(&'a self, from: &'a str, mail: &'a Mail) -> MailFuture<'a> {
        Box::pin(async move {
            let message = message(from, mail)?;
            match tokio::time::timeout(self.options.send_timeout, self.transport.send(message))
                .await
            {
                Ok(Ok(_response)) => Ok(()),
                Ok(Err(error)) => Err(self.classify(&error)),
                Err(_elapsed) => Err(MailError::Transient(format!(
                    "SMTP server {}:{}: not done within {:?} (silent or too slow)",
                    self.url.host, self.url.port, self.options.send_timeout
                ))),
            }
        })
    }
}

/// `mail` from `from` as an RFC 5322 message: From, To, Subject, Date, Message-ID and a
/// multipart/alternative of the text and HTML bodies (UTF-8). Shared by the SMTP and outbox
/// mailers.
///
/// # Errors
/// [`MailError::Permanent`] for an address lettre cannot parse.
pub(crate) fn message(from: &str, mail: &Mail) -> Result<Message, MailError> {
    let from: Mailbox = from
        .parse()
        .map_err(|e| MailError::Permanent(format!("bad sender address {from:?}: {e}")))?;
    let to: Mailbox = mail
        .to
        .parse()
        .map_err(|e| MailError::Permanent(format!("bad recipient address {:?}: {e}", mail.to)))?;
    let message_id = format!(
        "<{}@{}>",
        uuid::Uuid::new_v4().simple(),
        from.email.domain()
    );
    // A subject is one line: a line break in it could otherwise start a header of its own.
    let subject: String = mail
        .subject
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    Message::builder()
        .from(from)
        .to(to)
        .subject(subject)
        .date_now()
        .message_id(Some(message_id))
        .multipart(MultiPart::alternative_plain_html(
            mail.text.clone(),
            mail.html.clone(),
        ))
        .map_err(|e| MailError::Permanent(format!("the message could not be built: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> SmtpUrl {
        SmtpUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    fn error(url: &str) -> String {
        match SmtpUrl::parse(url) {
            Ok(parsed) => panic!("{url} parsed as {parsed:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn schemes_and_default_ports() {
        let url = parse("smtp://mail.example.com");
        assert_eq!(url.security(), SmtpSecurity::Opportunistic);
        assert_eq!((url.host(), url.port()), ("mail.example.com", 25));
        assert_eq!((url.user(), url.has_password()), (None, false));

        let url = parse("smtp+starttls://mail.example.com");
        assert_eq!(url.security(), SmtpSecurity::StartTls);
        assert_eq!(url.port(), 587);

        let url = parse("smtps://mail.example.com/");
        assert_eq!(url.security(), SmtpSecurity::ImplicitTls);
        assert_eq!(url.port(), 465);

        let url = parse("SMTPS://Mail.Example.COM:2465");
        assert_eq!(url.security(), SmtpSecurity::ImplicitTls);
        assert_eq!((url.host(), url.port()), ("mail.example.com", 2465));
    }

    #[test]
    fn explicit_ports_and_ip_hosts() {
        assert_eq!(parse("smtp://127.0.0.1:2525").port(), 2525);
        assert_eq!(parse("smtp://127.0.0.1:2525").host(), "127.0.0.1");
        let url = parse("smtp+starttls://[::1]:1587");
        assert_eq!((url.host(), url.port()), ("::1", 1587));
        assert_eq!(url.to_string(), "smtp+starttls://[::1]:1587");
        assert_eq!(parse("smtps://[::1]").port(), 465);
        assert_eq!(parse("smtp://localhost:65535").port(), 65535);
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let url =
            parse("smtp+starttls://us%40er%3A1:p%40ss%3Aw%2Fo%25rd%20%C3%A9@mail.example.com");
        assert_eq!(url.user(), Some("us@er:1"));
        assert_eq!(
            url.password.as_ref().map(|p| p.expose_secret().to_owned()),
            Some("p@ss:w/o%rd é".to_owned())
        );
        // Unencoded `@`, `/` and `:` in a password: the host still follows the last `@`.
        let url = parse("smtps://user:p@ss/w:rd@mail.example.com:465");
        assert_eq!(url.user(), Some("user"));
        assert_eq!(
            url.password.as_ref().map(|p| p.expose_secret().to_owned()),
            Some("p@ss/w:rd".to_owned())
        );
        assert_eq!(url.host(), "mail.example.com");
        // A user without a password (the password comes from a file).
        let url = parse("smtp://user@mail.example.com");
        assert_eq!((url.user(), url.has_password()), (Some("user"), false));
        let url = url.with_password(SecretString::from("from-a-file".to_owned()));
        assert!(url.has_password());
        assert_eq!(
            url.password.as_ref().map(|p| p.expose_secret().to_owned()),
            Some("from-a-file".to_owned())
        );
        // An empty userinfo is no user.
        assert_eq!(parse("smtp://@mail.example.com").user(), None);
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, expected) in [
            ("mail.example.com", "expected smtp://"),
            ("http://mail.example.com", "unsupported scheme \"http\""),
            ("smtp://", "no host"),
            ("smtp://user:pw@", "no host"),
            ("smtp://mail.example.com:0", "bad port \"0\""),
            ("smtp://mail.example.com:65536", "bad port \"65536\""),
            ("smtp://mail.example.com:abc", "bad port \"abc\""),
            ("smtp://mail.example.com:", "bad port \"\""),
            ("smtp://mail.example.com/path", "unexpected \"/path\""),
            ("smtp://mail.example.com?x=1", "unexpected \"?x=1\""),
            ("smtp://mail..example.com", "bad host"),
            ("smtp://mail example.com", "bad host"),
            ("smtp://[::1", "unclosed ["),
            ("smtp://[nope]:25", "bad IPv6 address"),
            ("smtp://[::1]x", "after the IPv6 address"),
            (
                "smtp://us%zzer:pw@host",
                "bad percent-encoding in the user name",
            ),
            (
                "smtp://user:pw%zz@host",
                "bad percent-encoding in the password",
            ),
            (
                "smtp://user:pw%ff@host",
                "bad percent-encoding in the password",
            ),
            ("smtp://:pw@host", "a password without a user name"),
        ] {
            let message = error(url);
            assert!(
                message.starts_with("invalid SMTP URL: "),
                "{url}: {message}"
            );
            assert!(message.contains(expected), "{url}: {message}");
        }
    }

    #[test]
    fn the_password_is_never_shown() {
        let secret = "Hunter2-very-secret";
        for url in [
            format!("smtps://alice:{secret}@mail.example.com"),
            format!("smtp://alice:{secret}@mail.example.com:2525"),
            format!("smtp+starttls://al%20ice:{secret}@[::1]"),
        ] {
            let parsed = parse(&url);
            for shown in [
                format!("{parsed}"),
                format!("{parsed:?}"),
                format!("{parsed:#?}"),
            ] {
                assert!(!shown.contains(secret), "{shown}");
                assert!(shown.contains("***"), "{shown}");
            }
        }
        let url = parse("smtps://alice@mail.example.com")
            .with_password(SecretString::from(secret.to_owned()));
        assert_eq!(url.to_string(), "smtps://alice:***@mail.example.com:465");
        assert!(!format!("{url:?}").contains(secret));
        // Nor in the errors, whatever is wrong around it.
        for url in [
            format!("smtp://alice:{secret}@"),
            format!("smtp://alice:{secret}@host:99999"),
            format!("smtp://alice:{secret}@bad host"),
            format!("smtp://alice:{secret}%zz@host"),
            format!("smtp://:{secret}@host"),
            format!("{secret}://host"),
            secret.to_owned(),
            format!("ftp://alice:{secret}@host"),
        ] {
            let message = error(&url);
            assert!(!message.contains(secret), "{message}");
            assert!(!message.contains("Hunter2"), "{message}");
        }
        // The mailer's Debug output neither.
        let mailer = SmtpMailer::new(
            parse(&format!("smtps://alice:{secret}@mail.example.com")),
            SmtpOptions::default(),
        )
        .expect("mailer");
        assert!(!format!("{mailer:?}").contains(secret));
    }

    #[test]
    fn display_round_trips() {
        for url in [
            "smtp://mail.example.com:25",
            "smtp+starttls://user%40example.com@mail.example.com:587",
            "smtps://127.0.0.1:465",
        ] {
            let parsed = parse(url);
            assert_eq!(parsed.to_string(), url);
            assert_eq!(parse(&parsed.to_string()).to_string(), url);
        }
    }

    #[test]
    fn a_password_without_a_user_is_a_bad_configuration() {
        let url = parse("smtps://mail.example.com")
            .with_password(SecretString::from("pw-only".to_owned()));
        let error = SmtpMailer::new(url, SmtpOptions::default()).expect_err("refused");
        assert!(matches!(error, MailError::Permanent(_)), "{error:?}");
        assert!(!error.to_string().contains("pw-only"));
    }

    #[test]
    fn a_ca_pem_without_a_certificate_is_a_bad_configuration() {
        let url = parse("smtps://mail.example.com");
        for pem in [
            &b"not a PEM"[..],
            b"-----BEGIN CERTIFICATE-----\nbm90IERFUg==\n-----END CERTIFICATE-----\n",
        ] {
            let error = SmtpMailer::new(url.clone(), SmtpOptions::default().add_ca_pem(pem))
                .expect_err("refused");
            assert!(matches!(error, MailError::Permanent(_)), "{error:?}");
        }
    }

    #[test]
    fn messages_have_the_headers_and_both_parts() {
        let mail = Mail {
            to: "Zoë <zoe@example.org>".to_owned(),
            subject: "Réinitialiser\r\nBcc: evil@example.net".to_owned(),
            text: "Bonjour, voici le lien.".to_owned(),
            html: "<p>Bonjour</p>".to_owned(),
        };
        let built = message("bulwark@example.com", &mail).expect("message");
        let text = String::from_utf8(built.formatted()).expect("ASCII");
        let headers = text.split("\r\n\r\n").next().expect("headers");
        for name in ["From: ", "To: ", "Subject: ", "Date: ", "Message-ID: <"] {
            assert!(headers.contains(name), "{name} missing in {headers}");
        }
        assert!(headers.contains("@example.com>"), "{headers}");
        assert!(
            !headers.to_ascii_lowercase().contains("\nbcc:"),
            "{headers}"
        );
        assert!(text.contains("multipart/alternative"), "{text}");
        assert!(text.contains("text/plain; charset=utf-8"), "{text}");
        assert!(text.contains("text/html; charset=utf-8"), "{text}");

        for (from, to) in [
            ("not an address", "a@example.com"),
            ("a@example.com", "nope"),
        ] {
            let mail = Mail {
                to: to.to_owned(),
                ..mail.clone()
            };
            let error = message(from, &mail).expect_err("refused");
            assert!(matches!(error, MailError::Permanent(_)), "{error:?}");
        }
    }
}
