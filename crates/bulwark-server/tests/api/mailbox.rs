//! Reading the mails the server delivered: `.eml` files of the outbox (the default when
//! `smtp_url` is unset), parsed with mail-parser, and the tokens of their links.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use mail_parser::MessageParser;

use crate::helpers::TestApp;

/// One delivered message.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The recipient (`To`).
    pub to: String,
    /// The sender (`From`).
    pub from: String,
    /// The subject.
    pub subject: String,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    pub html: String,
}

impl Delivered {
    /// The token of the link to `page` (`/password-reset` or `/verify-email`) in the text part,
    /// checking that the HTML part links to the same URL.
    pub fn token(&self, page: &str) -> String {
        let marker = format!("{page}?token=");
        let start = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("no {marker} link in {:?}", self.text))
            + marker.len();
        let token: String = self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        assert!(
            self.html.contains(&format!("{marker}{token}\"")),
            "the HTML part links elsewhere: {:?}",
            self.html
        );
        token
    }

    /// The whole link to `page` in the text part.
    pub fn link(&self, page: &str) -> String {
        let start = self
            .text
            .find("http")
            .unwrap_or_else(|| panic!("no link in {:?}", self.text));
        let link: String = self.text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        assert!(link.contains(page), "{link} is not a {page} link");
        link
    }
}

/// Parses an RFC 5322 message.
pub fn parse(bytes: &[u8]) -> Delivered {
    let message = MessageParser::default()
        .parse(bytes)
        .expect("an RFC 5322 message");
    let address = |a: Option<&mail_parser::Address<'_>>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap_or_default()
            .to_owned()
    };
    Delivered {
        to: address(message.to()),
        from: address(message.from()),
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message
            .body_text(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
        html: message
            .body_html(0)
            .map(|t| t.into_owned())
            .unwrap_or_default(),
    }
}

/// The outbox folder of `app`.
pub fn outbox(app: &TestApp) -> PathBuf {
    app.settings.data_dir.join("outbox")
}

/// The `.eml` files of `dir`, in the order they were written.
pub fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Waits until `dir` holds at least `count` messages (at most `within`), and answers every
/// message there, oldest first.
pub async fn wait_for_mails(dir: &Path, count: usize, within: Duration) -> Vec<Delivered> {
    let deadline = Instant::now() + within;
    loop {
        let files = eml_files(dir);
        if files.len() >= count {
            return files
                .iter()
                .map(|f| parse(&std::fs::read(f).expect("readable .eml")))
                .collect();
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} mails in {} after {within:?}",
            files.len(),
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The messages of `app`'s outbox once `count` are there.
pub async fn mails(app: &TestApp, count: usize) -> Vec<Delivered> {
    wait_for_mails(&outbox(app), count, Duration::from_secs(10)).await
}

/// Waits long enough for the mail worker to have delivered anything queued (it wakes at once
/// on a new mail and polls every second), then answers how many messages the outbox holds.
pub async fn settled_count(app: &TestApp) -> usize {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    eml_files(&outbox(app)).len()
}
