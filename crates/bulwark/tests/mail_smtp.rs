//! The mailers against real parts: `SmtpMailer` delivering to a real SMTP server (aiosmtpd, a
//! Python process on a free loopback port, in a virtualenv cached under
//! `~/.cache/bulwark-mail/`: see tests/smtp/), in plain SMTP, STARTTLS, implicit TLS and with
//! AUTH, with certificates made here by rcgen; and `OutboxMailer` writing to a real folder.
//! Every delivered message is read back and parsed (mail-parser) from what the server wrote.
#![cfg(all(feature = "mail", unix))]

use std::{
    io::{BufRead as _, BufReader},
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use bulwark::mail::{
    Mail, MailError, Mailer,
    outbox::OutboxMailer,
    smtp::{SmtpMailer, SmtpOptions, SmtpUrl},
};
use mail_parser::MimeHeaders as _;
use secrecy::SecretString;

const FROM: &str = "bulwark@example.com";
const SUBJECT: &str = "Réinitialisez votre mot de passe — ✓";
const TEXT: &str = "Bonjour Zoë,\n\nOuvrez ce lien : https://app.example.com/password-reset?token=abc\n\nSi ce n'était pas vous, ignorez ce message.\n";
const HTML: &str = "<p>Bonjour Zoë,</p><p><a href=\"https://app.example.com/password-reset?token=abc\">Réinitialiser</a></p>";

fn mail(to: &str) -> Mail {
    Mail {
        to: to.to_owned(),
        subject: SUBJECT.to_owned(),
        text: TEXT.to_owned(),
        html: HTML.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The SMTP server: aiosmtpd in a cached virtualenv.

const REQUIREMENTS: &str = include_str!("smtp/requirements.txt");

fn launcher() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/smtp_server.py")
}

/// The virtualenv's Python with the pinned aiosmtpd, made once per requirements file:
/// `~/.cache/bulwark-mail/venv-<sha256 of requirements.txt>`. Built in a temporary folder and
/// renamed, so that test processes running at once never see half a virtualenv.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, REQUIREMENTS.as_bytes());
        let hash: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))
            .expect("HOME or XDG_CACHE_HOME")
            .join("bulwark-mail");
        let venv = cache.join(format!("venv-{hash}"));
        let python = venv.join("bin/python");
        let works = |python: &Path| {
            Command::new(python)
                .args(["-c", "import aiosmtpd"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if works(&python) {
            return python;
        }
        std::fs::create_dir_all(&cache).expect("cache folder");
        let building = cache.join(format!("venv-{hash}.building-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&building);
        let base = std::env::var("BULWARK_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        let status = Command::new(&base)
            .args(["-m", "venv"])
            .arg(&building)
            .status()
            .unwrap_or_else(|e| panic!("{base} -m venv: {e} (the mail tests need Python 3)"));
        assert!(status.success(), "{base} -m venv failed");
        let requirements = building.join("requirements.txt");
        std::fs::write(&requirements, REQUIREMENTS).expect("requirements");
        let status = Command::new(building.join("bin/python"))
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .args(["--no-input", "--require-hashes", "--only-binary=:all:"])
            .arg("-r")
            .arg(&requirements)
            .status()
            .expect("pip");
        assert!(
            status.success(),
            "pip install -r tests/smtp/requirements.txt failed"
        );
        if std::fs::rename(&building, &venv).is_err() {
            if works(&python) {
                // Another test process won the race: its virtualenv is as good as this one.
                let _ = std::fs::remove_dir_all(&building);
            } else {
                // A broken one (its Python gone): replaced.
                let _ = std::fs::remove_dir_all(&venv);
                std::fs::rename(&building, &venv).expect("virtualenv in place");
            }
        }
        assert!(
            works(&python),
            "{} cannot import aiosmtpd",
            python.display()
        );
        python
    })
}

/// A CA and a server certificate for `localhost` and `127.0.0.1` signed by it (rcgen).
struct TestPki {
    ca_pem: String,
    dir: tempfile::TempDir,
}

impl TestPki {
    fn new() -> Self {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "bulwark mail test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA");
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &ca).expect("server certificate");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).expect("cert.pem");
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).expect("key.pem");
        Self {
            ca_pem: ca.pem(),
            dir,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    StartTls,
    Implicit,
}

#[derive(Clone, Copy)]
struct Setup<'a> {
    mode: Mode,
    pki: Option<&'a TestPki>,
    auth: Option<(&'a str, &'a str)>,
    reject: Option<&'a str>,
}

impl Default for Setup<'_> {
    fn default() -> Self {
        Self {
            mode: Mode::Plain,
            pki: None,
            auth: None,
            reject: None,
        }
    }
}

/// A running aiosmtpd, killed when dropped; what it received is in `out`.
struct SmtpServer {
    child: Child,
    port: u16,
    out: tempfile::TempDir,
}

/// One message the server accepted: its bytes and what the session saw.
struct Delivered {
    raw: Vec<u8>,
    meta: serde_json::Value,
}

impl SmtpServer {
    fn start(setup: Setup<'_>) -> Self {
        let out = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new(python());
        command.arg(launcher()).arg(out.path());
        let mode = match setup.mode {
            Mode::Plain => "plain",
            Mode::StartTls => "starttls",
            Mode::Implicit => "implicit",
        };
        command.args(["--mode", mode]);
        if let Some(pki) = setup.pki {
            command
                .arg("--tls")
                .arg(pki.dir.path().join("cert.pem"))
                .arg(pki.dir.path().join("key.pem"));
        }
        if let Some((login, password)) = setup.auth {
            command.args(["--auth", login, password]);
        }
        if let Some(reject) = setup.reject {
            command.args(["--reject", reject]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the SMTP server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the SMTP server prints its port");
        let Some(port) = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
        else {
            let status = child.wait();
            panic!("the SMTP server did not start ({status:?}), printed {line:?}");
        };
        Self { child, port, out }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The messages received so far, in order (each is on disk before the server's 250).
    fn delivered(&self) -> Vec<Delivered> {
        let mut messages = Vec::new();
        for n in 1.. {
            let base = self.out.path().join(n.to_string());
            let Ok(raw) = std::fs::read(base.with_extension("eml")) else {
                break;
            };
            let meta = std::fs::read(base.with_extension("json")).expect("meta");
            let meta = serde_json::from_slice(&meta).expect("meta JSON");
            messages.push(Delivered { raw, meta });
        }
        messages
    }

    fn url(&self, scheme: &str, userinfo: &str) -> SmtpUrl {
        format!("{scheme}://{userinfo}127.0.0.1:{}", self.port)
            .parse()
            .expect("URL")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn options(pki: Option<&TestPki>) -> SmtpOptions {
    let options = SmtpOptions::default().timeout(Duration::from_secs(5));
    match pki {
        Some(pki) => options.add_ca_pem(pki.ca_pem.as_bytes()),
        None => options,
    }
}

/// The message parses, with our headers and both alternatives intact.
fn assert_is_our_message(raw: &[u8], to: &str) {
    let message = mail_parser::MessageParser::default()
        .parse(raw)
        .expect("the message parses");
    let from = message.from().and_then(|a| a.first()).expect("From");
    assert_eq!(from.address(), Some(FROM));
    let recipient = message.to().and_then(|a| a.first()).expect("To");
    assert_eq!(recipient.address(), Some(to));
    assert_eq!(message.subject(), Some(SUBJECT));
    assert!(message.date().is_some(), "Date");
    assert!(
        message
            .message_id()
            .is_some_and(|id| id.ends_with("@example.com")),
        "Message-ID {:?}",
        message.message_id()
    );
    let content_type = message.content_type().expect("Content-Type");
    assert_eq!(
        (content_type.ctype(), content_type.subtype()),
        ("multipart", Some("alternative"))
    );
    assert_eq!(message.text_body_count(), 1);
    assert_eq!(message.html_body_count(), 1);
    let text = message.body_text(0).expect("text part");
    assert_eq!(text.replace("\r\n", "\n"), TEXT);
    let html = message.body_html(0).expect("HTML part");
    assert_eq!(html.trim_end(), HTML);
    for part in [message.text_part(0), message.html_part(0)] {
        let part = part.expect("part");
        let charset = part
            .content_type()
            .and_then(|c| c.attribute("charset"))
            .map(str::to_ascii_lowercase);
        assert_eq!(charset.as_deref(), Some("utf-8"));
    }
}

fn is_transient(result: &Result<(), MailError>) -> bool {
    if let Err(error) = result {
        eprintln!("{error}");
    }
    matches!(result, Err(MailError::Transient(_)))
}

fn is_permanent(result: &Result<(), MailError>) -> bool {
    if let Err(error) = result {
        eprintln!("{error}");
    }
    matches!(result, Err(MailError::Permanent(_)))
}

// ---------------------------------------------------------------------------------------------
// SMTP

#[tokio::test]
async fn plain_smtp_delivers_both_parts_with_a_utf8_subject() {
    let server = SmtpServer::start(Setup::default());
    // `smtp://` to a server offering no STARTTLS: plain, as to a local relay.
    let mailer = SmtpMailer::new(server.url("smtp", ""), options(None)).expect("mailer");
    mailer
        .send(FROM, &mail("zoe@example.org"))
        .await
        .expect("delivered");
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].meta["mail_from"], FROM);
    assert_eq!(
        delivered[0].meta["rcpt_tos"],
        serde_json::json!(["zoe@example.org"])
    );
    assert_eq!(delivered[0].meta["tls"], false);
    assert_is_our_message(&delivered[0].raw, "zoe@example.org");
}

#[tokio::test]
async fn opportunistic_smtp_upgrades_to_starttls_when_offered() {
    let pki = TestPki::new();
    let server = SmtpServer::start(Setup {
        mode: Mode::StartTls,
        pki: Some(&pki),
        ..Setup::default()
    });
    let mailer = SmtpMailer::new(server.url("smtp", ""), options(Some(&pki))).expect("mailer");
    mailer
        .send(FROM, &mail("zoe@example.org"))
        .await
        .expect("delivered");
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].meta["tls"], true, "STARTTLS was used");
    assert_is_our_message(&delivered[0].raw, "zoe@example.org");
}

#[tokio::test]
async fn required_starttls_delivers_over_tls() {
    let pki = TestPki::new();
    let server = SmtpServer::start(Setup {
        mode: Mode::StartTls,
        pki: Some(&pki),
        ..Setup::default()
    });
    let mailer =
        SmtpMailer::new(server.url("smtp+starttls", ""), options(Some(&pki))).expect("mailer");
    mailer
        .send(FROM, &mail("zoe@example.org"))
        .await
        .expect("delivered");
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].meta["tls"], true);
    assert_is_our_message(&delivered[0].raw, "zoe@example.org");
}

/// Refused as *transient*: the message is fine, the way to the server is not (a server whose
/// TLS is being fixed, or something on the path stripping STARTTLS). The queue keeps the mail
/// and tries again with back-off, and nothing ever goes out in clear meanwhile.
#[tokio::test]
async fn required_starttls_is_refused_by_a_server_without_it() {
    let server = SmtpServer::start(Setup::default());
    let mailer = SmtpMailer::new(server.url("smtp+starttls", ""), options(None)).expect("mailer");
    let result = mailer.send(FROM, &mail("zoe@example.org")).await;
    assert!(is_transient(&result), "{result:?}");
    let message = result.expect_err("refused").to_string();
    assert!(message.contains("STARTTLS"), "{message}");
    assert!(server.delivered().is_empty(), "nothing sent in clear");
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_without_falling_back_to_clear() {
    let pki = TestPki::new();
    let server = SmtpServer::start(Setup {
        mode: Mode::StartTls,
        pki: Some(&pki),
        ..Setup::default()
    });
    // The server's CA is not given: the Mozilla roots do not know it.
    for scheme in ["smtp", "smtp+starttls"] {
        let mailer = SmtpMailer::new(server.url(scheme, ""), options(None)).expect("mailer");
        let result = mailer.send(FROM, &mail("zoe@example.org")).await;
        assert!(is_transient(&result), "{scheme}: {result:?}");
    }
    assert!(server.delivered().is_empty());
}

#[tokio::test]
async fn implicit_tls_delivers() {
    let pki = TestPki::new();
    let server = SmtpServer::start(Setup {
        mode: Mode::Implicit,
        pki: Some(&pki),
        ..Setup::default()
    });
    let mailer = SmtpMailer::new(server.url("smtps", ""), options(Some(&pki))).expect("mailer");
    mailer
        .send(FROM, &mail("zoe@example.org"))
        .await
        .expect("delivered");
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].meta["tls"], true);
    assert_is_our_message(&delivered[0].raw, "zoe@example.org");

    // The same server through plain SMTP: no greeting ever comes.
    let mailer = SmtpMailer::new(
        server.url("smtp", ""),
        options(Some(&pki)).send_timeout(Duration::from_secs(1)),
    )
    .expect("mailer");
    let result = mailer.send(FROM, &mail("zoe@example.org")).await;
    assert!(is_transient(&result), "{result:?}");
}

const LOGIN: &str = "mailer@example.com";
const PASSWORD: &str = "p@ss w:rd/é%42";
const PASSWORD_ENCODED: &str = "p%40ss%20w%3Ard%2F%C3%A9%2542";

#[tokio::test]
async fn auth_with_user_and_password_over_starttls_and_implicit_tls() {
    let pki = TestPki::new();
    for (mode, scheme) in [
        (Mode::StartTls, "smtp+starttls"),
        // With credentials, `smtp://` requires STARTTLS too.
        (Mode::StartTls, "smtp"),
        (Mode::Implicit, "smtps"),
    ] {
        let server = SmtpServer::start(Setup {
            mode,
            pki: Some(&pki),
            auth: Some((LOGIN, PASSWORD)),
            ..Setup::default()
        });
        // The password in the URL, percent-encoded...
        let userinfo = format!("mailer%40example.com:{PASSWORD_ENCODED}@");
        let mailer =
            SmtpMailer::new(server.url(scheme, &userinfo), options(Some(&pki))).expect("mailer");
        mailer
            .send(FROM, &mail("zoe@example.org"))
            .await
            .unwrap_or_else(|e| panic!("{scheme}: {e}"));
        // ... or apart (`smtp_password_file`).
        let url = server
            .url(scheme, "mailer%40example.com@")
            .with_password(SecretString::from(PASSWORD.to_owned()));
        let mailer = SmtpMailer::new(url, options(Some(&pki))).expect("mailer");
        mailer
            .send(FROM, &mail("zoe@example.org"))
            .await
            .unwrap_or_else(|e| panic!("{scheme}: {e}"));
        let delivered = server.delivered();
        assert_eq!(delivered.len(), 2, "{scheme}");
        for message in &delivered {
            assert_eq!(message.meta["login"], LOGIN, "{scheme}");
            assert_eq!(message.meta["tls"], true, "{scheme}");
            assert_is_our_message(&message.raw, "zoe@example.org");
        }
        // Without credentials, the server refuses the mail: 530, permanent.
        let mailer = SmtpMailer::new(server.url(scheme, ""), options(Some(&pki))).expect("mailer");
        let result = mailer.send(FROM, &mail("zoe@example.org")).await;
        assert!(is_permanent(&result), "{scheme}: {result:?}");
    }
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_never_shown() {
    let pki = TestPki::new();
    let server = SmtpServer::start(Setup {
        mode: Mode::StartTls,
        pki: Some(&pki),
        auth: Some((LOGIN, PASSWORD)),
        ..Setup::default()
    });
    let wrong = "Wr0ng-Secret-Value";
    let url = server.url("smtp+starttls", &format!("mailer%40example.com:{wrong}@"));
    assert!(!format!("{url:?} {url}").contains(wrong));
    let mailer = SmtpMailer::new(url, options(Some(&pki))).expect("mailer");
    assert!(!format!("{mailer:?}").contains(wrong));
    let result = mailer.send(FROM, &mail("zoe@example.org")).await;
    assert!(is_permanent(&result), "{result:?}");
    let error = result.expect_err("refused");
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(shown.contains("535"), "{shown}");
        assert!(!shown.contains(wrong), "{shown}");
    }
    assert!(server.delivered().is_empty());
}

#[tokio::test]
async fn credentials_never_go_out_in_clear() {
    // A server without TLS: `smtp://user:password@` would have to send the password in clear.
    let server = SmtpServer::start(Setup::default());
    let url = server.url("smtp", &format!("mailer%40example.com:{PASSWORD_ENCODED}@"));
    let mailer = SmtpMailer::new(url, options(None)).expect("mailer");
    let result = mailer.send(FROM, &mail("zoe@example.org")).await;
    assert!(is_transient(&result), "{result:?}");
    let error = result.expect_err("refused");
    assert!(error.to_string().contains("STARTTLS"), "{error}");
    assert!(!format!("{error} {error:?}").contains(PASSWORD));
    assert!(server.delivered().is_empty());
}

#[tokio::test]
async fn a_550_reply_is_permanent() {
    let server = SmtpServer::start(Setup {
        reject: Some("nobody"),
        ..Setup::default()
    });
    let mailer = SmtpMailer::new(server.url("smtp", ""), options(None)).expect("mailer");
    let result = mailer.send(FROM, &mail("nobody@example.org")).await;
    assert!(is_permanent(&result), "{result:?}");
    assert!(result.expect_err("refused").to_string().contains("550"));
    // The server itself is fine: the next recipient gets through.
    mailer
        .send(FROM, &mail("zoe@example.org"))
        .await
        .expect("delivered");
    assert_eq!(server.delivered().len(), 1);
}

#[tokio::test]
async fn a_stopped_server_is_transient_and_quick() {
    let mut server = SmtpServer::start(Setup::default());
    let url = server.url("smtp", "");
    server.stop();
    let timeout = Duration::from_secs(5);
    let mailer = SmtpMailer::new(url, SmtpOptions::default().timeout(timeout)).expect("mailer");
    let started = Instant::now();
    let result = mailer.send(FROM, &mail("zoe@example.org")).await;
    assert!(is_transient(&result), "{result:?}");
    assert!(started.elapsed() < timeout, "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_silent_server_times_out_as_transient() {
    // Accepts connections and never says a word.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url: SmtpUrl = format!("smtp://127.0.0.1:{port}").parse().expect("URL");
    let mailer = SmtpMailer::new(
        url,
        SmtpOptions::default()
            .timeout(Duration::from_secs(1))
            .send_timeout(Duration::from_secs(2)),
    )
    .expect("mailer");
    let started = Instant::now();
    let result = mailer.send(FROM, &mail("zoe@example.org")).await;
    assert!(is_transient(&result), "{result:?}");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    silent.abort();
}

// ---------------------------------------------------------------------------------------------
// Outbox

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.map(|e| e.expect("entry").path()).collect();
    files.sort();
    files
}

#[tokio::test]
async fn outbox_writes_0600_eml_files_that_parse_back() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("data/outbox");
    let mailer = OutboxMailer::new(&dir);
    mailer
        .send(FROM, &mail("zoe@example.org"))
        .await
        .expect("written");
    mailer
        .send(FROM, &mail("other@example.org"))
        .await
        .expect("written");
    assert_eq!(mode(&dir), 0o700, "the folder");
    let files = eml_files(&dir);
    assert_eq!(files.len(), 2, "{files:?}: no temporary file left");
    for (file, to) in files.iter().zip(["zoe@example.org", "other@example.org"]) {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        let (millis, random) = name
            .strip_suffix(".eml")
            .and_then(|n| n.split_once('-'))
            .expect("<unix-millis>-<random>.eml");
        let millis: u128 = millis.parse().expect("millis");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        assert!(now - millis < 60_000, "{name}");
        assert!(random.len() >= 16, "{name}");
        assert_eq!(mode(file), 0o600, "{name}");
        assert_is_our_message(&std::fs::read(file).expect("read"), to);
    }
}

#[tokio::test]
async fn outbox_errors_are_transient() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("outbox");
    std::fs::write(&dir, b"a file where the folder should be").expect("file");
    let result = OutboxMailer::new(&dir)
        .send(FROM, &mail("zoe@example.org"))
        .await;
    assert!(is_transient(&result), "{result:?}");
    // A bad address is no I/O error: permanent.
    let result = OutboxMailer::new(root.path())
        .send(FROM, &mail("not an address"))
        .await;
    assert!(is_permanent(&result), "{result:?}");
}

/// The file is written on Tokio's blocking threads: while the only one is busy, `send` waits
/// without writing anything, and the async thread goes on.
#[test]
fn outbox_writes_on_a_blocking_thread() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(1)
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("outbox");
        let (release, released) = std::sync::mpsc::channel::<()>();
        let busy = tokio::task::spawn_blocking(move || released.recv());
        let mailer = OutboxMailer::new(&dir);
        let mail = mail("zoe@example.org");
        let mut send = std::pin::pin!(mailer.send(FROM, &mail));
        let waited = tokio::time::timeout(Duration::from_millis(300), &mut send).await;
        assert!(
            waited.is_err(),
            "sent without a blocking thread: {waited:?}"
        );
        assert!(eml_files(&dir).is_empty(), "written on the async thread");
        release.send(()).expect("release");
        send.await.expect("written");
        busy.await.expect("joined").expect("released");
        assert_eq!(eml_files(&dir).len(), 1);
    });
}
