//! `--format text` (the default): a table for people, then each finding's evidence, then the
//! checks that did not run and a summary line.

use std::fmt::Write as _;

use crate::{CheckStatus, Report, catalog::Severity};

const RESET: &str = "\x1b[0m";
const BOLD: &str = "\x1b[1m";
const DIM: &str = "\x1b[2m";
/// The reason the orchestrator gives checks that `--only`/`--skip` left out.
const LEFT_OUT: &str = "left out by --only/--skip";

fn severity_colour(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "\x1b[1;31m",
        Severity::High => "\x1b[31m",
        Severity::Medium => "\x1b[33m",
        Severity::Low => "\x1b[36m",
        Severity::Info => "\x1b[2m",
    }
}

/// Text from the audited server, made safe for a terminal: control characters (an escape
/// sequence in a hostile answer could rewrite the screen) become `\u{fffd}`, but for newlines
/// and tabs.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// One line of `text`, made safe and without newlines (for a table cell).
fn cell(text: &str) -> String {
    clean(text).replace(['\n', '\t'], " ")
}

/// `text` padded with spaces to `width` characters.
fn pad(text: &str, width: usize) -> String {
    let len = text.chars().count();
    format!("{text}{}", " ".repeat(width.saturating_sub(len)))
}

struct Paint {
    colour: bool,
}

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("{code}{text}{RESET}")
        } else {
            text.to_owned()
        }
    }
}

fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else {
        // Tenths of a second, exactly (no float rounding surprises).
        format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
    }
}

/// The report as text for a terminal or a log; `colour` adds ANSI colours (the CLI passes
/// whether standard output is a terminal and `NO_COLOR` is unset).
pub fn text(report: &Report, colour: bool) -> String {
    let paint = Paint { colour };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        paint.wrap(
            BOLD,
            &format!(
                "bulwark-audit {} · {} · {}",
                env!("CARGO_PKG_VERSION"),
                cell(&report.target),
                report.started_at
            )
        )
    );
    out.push('\n');

    if report.findings.is_empty() {
        let _ = writeln!(out, "No findings.");
    } else {
        let rows: Vec<[String; 4]> = report
            .findings
            .iter()
            .map(|f| {
                [
                    f.severity.as_str().to_owned(),
                    f.id.as_str().to_owned(),
                    cell(&f.operation),
                    cell(&f.title),
                ]
            })
            .collect();
        let header = ["SEVERITY", "ID", "OPERATION", "TITLE"];
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, c) in widths.iter_mut().zip(row) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = format!(
            "{}  {}  {}  {}",
            pad(header[0], widths[0]),
            pad(header[1], widths[1]),
            pad(header[2], widths[2]),
            header[3]
        );
        let _ = writeln!(out, "{}", paint.wrap(BOLD, &line));
        for (row, f) in rows.iter().zip(&report.findings) {
            let _ = writeln!(
                out,
                "{}  {}  {}  {}",
                paint.wrap(severity_colour(f.severity), &pad(&row[0], widths[0])),
                pad(&row[1], widths[1]),
                pad(&row[2], widths[2]),
                row[3]
            );
        }

        for (i, f) in report.findings.iter().enumerate() {
            out.push('\n');
            let _ = writeln!(
                out,
                "[{}] {} {} {}",
                i + 1,
                paint.wrap(severity_colour(f.severity), f.severity.as_str()),
                paint.wrap(BOLD, f.id.as_str()),
                cell(&f.operation)
            );
            let _ = writeln!(out, "    {}", cell(&f.title));
            for (label, body) in [
                ("request", &f.evidence.request),
                ("response", &f.evidence.response),
            ] {
                if body.trim().is_empty() {
                    continue;
                }
                let _ = writeln!(out, "    {}", paint.wrap(DIM, &format!("{label}:")));
                for l in clean(body).lines() {
                    let _ = writeln!(out, "      {l}");
                }
            }
            let _ = writeln!(out, "    fix: {}", cell(&f.remediation));
        }
    }

    // Checks left out by --only/--skip go on one line; the others that did not run, each with
    // its reason.
    let (left_out, skipped): (Vec<_>, Vec<_>) = report
        .checks
        .iter()
        .filter(|c| c.status == CheckStatus::Skipped)
        .partition(|c| c.reason.as_deref() == Some(LEFT_OUT));
    if !skipped.is_empty() {
        out.push('\n');
        let _ = writeln!(out, "Not run:");
        let width = skipped
            .iter()
            .map(|c| c.id.as_str().len())
            .max()
            .unwrap_or(0);
        for c in &skipped {
            let reason = c.reason.as_deref().map(cell).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {}  {}",
                pad(c.id.as_str(), width),
                paint.wrap(DIM, &reason)
            );
        }
    }
    if !left_out.is_empty() {
        let ids: Vec<&str> = left_out.iter().map(|c| c.id.as_str()).collect();
        out.push('\n');
        let _ = writeln!(
            out,
            "{}",
            paint.wrap(
                DIM,
                &format!("Left out by --only/--skip: {}", ids.join(", "))
            )
        );
    }

    let count = |s: CheckStatus| report.checks.iter().filter(|c| c.status == s).count();
    out.push('\n');
    let _ = writeln!(
        out,
        "{} checks: {} passed, {} failed, {} skipped · {} findings · {} requests · {}",
        report.checks.len(),
        count(CheckStatus::Passed),
        count(CheckStatus::Failed),
        count(CheckStatus::Skipped),
        report.findings.len(),
        report.requests,
        duration(report.duration_ms)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::sample_report;

    #[test]
    fn text_lists_findings_evidence_and_a_summary() {
        let report = sample_report();

        let out = text(&report, false);

        assert!(!out.contains('\x1b'), "no colour asked: {out}");
        let table_header = out.lines().find(|l| l.starts_with("SEVERITY")).unwrap();
        assert!(table_header.contains("ID") && table_header.contains("OPERATION"));
        let bola = out
            .lines()
            .find(|l| l.starts_with("high") && l.contains("bola"))
            .unwrap();
        assert!(bola.contains("GET /items/{item_id}"), "{bola}");
        assert!(bola.contains(crate::CheckId::Bola.title()), "{bola}");
        // The table's columns line up.
        let low = out
            .lines()
            .find(|l| l.starts_with("low") && l.contains("security-headers"))
            .unwrap();
        assert_eq!(bola.find("bola"), low.find("security-headers"));
        assert!(out.contains("[1] high bola GET /items/{item_id}"), "{out}");
        assert!(out.contains("      Authorization: Bearer ***"), "{out}");
        assert!(out.contains("      {\"id\":7,\"owner\":\"a\"}"), "{out}");
        assert!(out.contains("    fix: Check the object's owner"), "{out}");
        assert!(out.contains("  jwt-alg-none"), "{out}");
        assert!(!out.contains("Left out"), "{out}");
        let summary = out.lines().last().unwrap();
        assert_eq!(
            summary,
            "25 checks: 1 passed, 2 failed, 22 skipped · 2 findings · 56 requests · 1.2 s"
        );
    }

    #[test]
    fn checks_left_out_by_only_go_on_one_line() {
        let mut report = sample_report();
        for c in &mut report.checks {
            if c.status == CheckStatus::Skipped && c.id != crate::CheckId::Tls {
                c.reason = Some(LEFT_OUT.into());
            }
        }

        let out = text(&report, false);

        assert!(out.contains("Not run:\n  tls  nothing to test\n"), "{out}");
        let line = out.lines().find(|l| l.starts_with("Left out")).unwrap();
        assert!(
            line.starts_with("Left out by --only/--skip: jwt-alg-none, "),
            "{line}"
        );
        assert!(!out.contains("  jwt-alg-none  "), "{out}");
    }

    #[test]
    fn text_without_findings_says_so() {
        let mut report = sample_report();
        report.findings.clear();
        report.duration_ms = 250;

        let out = text(&report, false);

        assert!(out.contains("No findings."), "{out}");
        assert!(!out.contains("SEVERITY"));
        assert!(out.trim_end().ends_with("· 250 ms"), "{out}");
    }

    #[test]
    fn colour_only_when_asked_and_terminal_escapes_from_the_server_are_defused() {
        let mut report = sample_report();
        report.findings[0].evidence.response = "HTTP/1.1 200 OK\n\n\x1b]0;pwned\x07\x1b[2J".into();
        report.findings[0].title = "evil\x1b[31m title".into();

        let plain = text(&report, false);
        let coloured = text(&report, true);

        assert!(!plain.contains('\x1b'), "{plain:?}");
        assert!(!plain.contains('\x07'));
        assert!(plain.contains("\u{fffd}]0;pwned"));
        assert!(coloured.contains("\x1b[31mhigh"), "{coloured:?}");
        assert!(!coloured.contains("\x1b[2J"));
        assert!(!coloured.contains("\x1b]0;"));
    }
}
