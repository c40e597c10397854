//! The server's mail delivery: the mailer the settings name (SMTP, or the outbox folder when
//! `smtp_url` is unset) behind the database's durable queue, drained by one worker per instance
//! (instances sharing a PostgreSQL database share the queue; each mail is claimed by one). Bodies
//! are sealed in the queue (`SealedMailQueue`): a copy of the database yields no reset link.

use std::sync::Arc;

use anyhow::Context as _;
use bulwark::mail::{
    Mailer,
    outbox::OutboxMailer,
    sealed::SealedMailQueue,
    smtp::{SmtpMailer, SmtpOptions},
    worker::{MailOutcome, MailWorker},
};
use secrecy::SecretString;

use crate::{config::Settings, db::Repository, metrics::Metrics};

/// The mail worker (not yet running) and where it delivers, for the start-up banner.
///
/// # Errors
/// When `smtp_password_file` cannot be read or the SMTP client cannot be configured.
pub fn worker(
    settings: &Settings,
    repo: &Arc<dyn Repository>,
    metrics: &Arc<Metrics>,
    secret: &bulwark::secret::MasterSecret,
) -> anyhow::Result<(MailWorker, String)> {
    let (mailer, transport): (Arc<dyn Mailer>, String) = match &settings.smtp_url {
        Some(url) => {
            let mut url = url.clone();
            if let Some(file) = &settings.smtp_password_file {
                let password = std::fs::read_to_string(file).with_context(|| {
                    format!("smtp_password_file: cannot read {}", file.display())
                })?;
                let password = password.trim_end_matches(['\r', '\n']).to_owned();
                url = url.with_password(SecretString::from(password));
            }
            // The URL's Display never shows the password.
            let transport = url.to_string();
            let mut options = SmtpOptions::default();
            if let Some(file) = &settings.smtp_ca_file {
                let pem = std::fs::read(file)
                    .with_context(|| format!("smtp_ca_file: cannot read {}", file.display()))?;
                options = options.add_ca_pem(pem);
            }
            let mailer =
                SmtpMailer::new(url, options).map_err(|e| anyhow::anyhow!("smtp_url: {e}"))?;
            (Arc::new(mailer), transport)
        }
        None => {
            let dir = settings.data_dir.join("outbox");
            let transport = format!("outbox {}", dir.display());
            (Arc::new(OutboxMailer::new(dir)), transport)
        }
    };
    let delay = settings.mail_retry_delay.0;
    // Bodies hold single-use links until delivered: sealed at rest under the master secret.
    let queue = Arc::new(SealedMailQueue::new(
        repo.mail_queue(),
        secret.sealer_for("mail-queue"),
    ));
    let worker = MailWorker::new(queue, mailer, settings.mail_from())
        .backoff(delay, std::time::Duration::from_secs(3600).max(delay))
        .observer({
            let metrics = Arc::clone(metrics);
            move |outcome| {
                metrics.mail(match outcome {
                    MailOutcome::Sent => "sent",
                    MailOutcome::Retried => "retried",
                    _ => "failed",
                });
            }
        });
    Ok((worker, transport))
}
