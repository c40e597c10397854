//! What an audit found: findings with their evidence, each check's status, and the run's figures.

use serde::{Deserialize, Serialize};

use crate::catalog::{CheckId, Severity};

/// Excerpts of the exchange that shows a finding, secrets masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Evidence {
    /// The request: its line, the headers that matter and a body excerpt.
    pub request: String,
    /// The answer: its status line, the headers that matter and a body excerpt.
    pub response: String,
}

/// One weakness found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The finding ID.
    pub id: CheckId,
    /// Its severity (the check's).
    pub severity: Severity,
    /// A one-line title: the check's, or a more precise one.
    pub title: String,
    /// `METHOD /path/template`, or `*` for the whole API.
    pub operation: String,
    /// What shows it.
    pub evidence: Evidence,
    /// How to fix it.
    pub remediation: String,
}

impl Finding {
    /// A finding of `id` on `operation`, with the check's severity, title and remediation.
    pub fn new(id: CheckId, operation: impl Into<String>, evidence: Evidence) -> Self {
        Finding {
            id,
            severity: id.severity(),
            title: id.title().to_owned(),
            operation: operation.into(),
            evidence,
            remediation: id.remediation().to_owned(),
        }
    }

    /// The same finding with a more precise title.
    pub fn titled(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }
}

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Ran and found nothing.
    Passed,
    /// Ran and found at least one weakness.
    Failed,
    /// Did not run (nothing to test, left out by `--only`/`--skip`, budget spent).
    Skipped,
}

/// One check's line in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The check.
    pub id: CheckId,
    /// How it ended.
    pub status: CheckStatus,
    /// Why it was skipped (or a note on how it passed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The whole audit: `--format json` prints this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The audited base URL.
    pub target: String,
    /// When the audit started (RFC 3339, UTC).
    pub started_at: String,
    /// How long it took.
    pub duration_ms: u64,
    /// How many requests it sent.
    pub requests: u64,
    /// What it found, sorted by severity (worst first), then ID and operation.
    pub findings: Vec<Finding>,
    /// Every check, in catalogue order.
    pub checks: Vec<CheckReport>,
}

impl Report {
    /// The worst severity found, if any.
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Whether a finding reaches `threshold` (the `--fail-on` exit rule).
    pub fn fails_at(&self, threshold: Severity) -> bool {
        self.worst().is_some_and(|s| s >= threshold)
    }

    /// Sorts findings the documented way, so that two runs can be diffed.
    pub fn sort(&mut self) {
        self.findings.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.id.cmp(&b.id))
                .then_with(|| a.operation.cmp(&b.operation))
                .then_with(|| a.title.cmp(&b.title))
        });
        self.findings
            .dedup_by(|a, b| a.id == b.id && a.operation == b.operation && a.title == b.title);
        self.checks.sort_by_key(|c| c.id);
    }
}
