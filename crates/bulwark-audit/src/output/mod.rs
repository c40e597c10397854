//! The report as people and tools read it: text, JSON, SARIF 2.1.0.
//!
//! Each function renders a whole [`Report`](crate::Report) to a string; the CLI writes it to
//! standard output or to `--output FILE`.

mod json;
mod sarif;
mod text;

pub use json::json;
pub use sarif::sarif;
pub use text::text;

/// The output formats of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// A table for people (the default).
    #[default]
    Text,
    /// The report as JSON (the contract's shape).
    Json,
    /// SARIF 2.1.0, one rule per finding ID.
    Sarif,
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "sarif" => Ok(Format::Sarif),
            _ => Err(format!("unknown format {s:?} (text, json, sarif)")),
        }
    }
}

impl Format {
    /// Renders `report` in this format (`colour` applies to text only).
    pub fn render(self, report: &crate::Report, colour: bool) -> String {
        match self {
            Format::Text => text(report, colour),
            Format::Json => json(report),
            Format::Sarif => sarif(report),
        }
    }
}

/// A small report with two findings and every check, for the formats' tests.
#[cfg(test)]
pub(crate) fn sample_report() -> crate::Report {
    use crate::{CheckId, CheckReport, CheckStatus, Evidence, Finding, Report};

    let findings = vec![
        Finding::new(
            CheckId::Bola,
            "GET /items/{item_id}",
            Evidence {
                request: "GET /items/7\nAuthorization: Bearer ***".into(),
                response:
                    "HTTP/1.1 200 OK\ncontent-type: application/json\n\n{\"id\":7,\"owner\":\"a\"}"
                        .into(),
            },
        ),
        Finding::new(
            CheckId::SecurityHeaders,
            "*",
            Evidence {
                request: "GET /".into(),
                response: "HTTP/1.1 200 OK".into(),
            },
        )
        .titled("Security headers are missing: X-Content-Type-Options"),
    ];
    let checks = CheckId::ALL
        .iter()
        .map(|&id| match id {
            CheckId::Bola | CheckId::SecurityHeaders => CheckReport {
                id,
                status: CheckStatus::Failed,
                reason: None,
            },
            CheckId::Ssti => CheckReport {
                id,
                status: CheckStatus::Passed,
                reason: None,
            },
            _ => CheckReport {
                id,
                status: CheckStatus::Skipped,
                reason: Some("nothing to test".into()),
            },
        })
        .collect();
    let mut report = Report {
        target: "http://127.0.0.1:8000/".into(),
        started_at: "2025-01-02T03:04:05Z".into(),
        duration_ms: 1234,
        requests: 56,
        findings,
        checks,
    };
    report.sort();
    report
}
