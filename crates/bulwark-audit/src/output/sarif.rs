//! `--format sarif`: SARIF 2.1.0, for code-scanning dashboards (GitHub, GitLab, Azure DevOps).
//!
//! One run; the driver `bulwark-audit` lists one rule per finding ID of the catalogue (all of
//! them, found or not, so that a dashboard can show which checks exist), each with the check's
//! title, remediation, default level and a `security-severity` score. Each finding is a result
//! whose location is the operation (a logical location) on the audited URL (an artifact
//! location), with the evidence in its properties.

use serde_json::{Value, json};

use crate::{
    Report,
    catalog::{CheckId, Severity},
};

/// The schema the log declares (OASIS, SARIF 2.1.0 with errata 01).
const SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// SARIF's `level` for a severity: critical and high are errors, medium a warning, the rest
/// notes.
pub(crate) fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// The `security-severity` score code-scanning dashboards sort by (a CVSS-like 0.0-10.0,
/// written as a string as GitHub documents it).
pub(crate) fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

fn rule(id: CheckId) -> Value {
    json!({
        "id": id.as_str(),
        "name": format!("{id:?}"),
        "shortDescription": { "text": id.title() },
        "fullDescription": { "text": id.remediation() },
        "help": { "text": id.remediation() },
        "defaultConfiguration": { "level": level(id.severity()) },
        "properties": {
            "security-severity": security_severity(id.severity()),
            "severity": id.severity().as_str(),
            "tags": ["security"],
        },
    })
}

/// The report as a SARIF 2.1.0 log (pretty JSON).
pub fn sarif(report: &Report) -> String {
    let rules: Vec<Value> = CheckId::ALL.iter().map(|&id| rule(id)).collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let rule_index = CheckId::ALL.iter().position(|&id| id == f.id).unwrap_or(0);
            let operation = if f.operation == "*" {
                "the whole API".to_owned()
            } else {
                f.operation.clone()
            };
            json!({
                "ruleId": f.id.as_str(),
                "ruleIndex": rule_index,
                "level": level(f.severity),
                "message": { "text": format!("{}: {operation}", f.title) },
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": { "uri": report.target },
                    },
                    "logicalLocations": [{
                        "name": f.operation,
                        "fullyQualifiedName": format!("{} {}", report.target, f.operation),
                        "kind": "function",
                    }],
                }],
                // Stable across runs, so that a dashboard tracks one finding over time.
                "partialFingerprints": {
                    "bulwarkAuditFinding/v1": format!("{}|{}|{}", f.id, f.operation, f.title),
                },
                "properties": {
                    "severity": f.severity.as_str(),
                    "security-severity": security_severity(f.severity),
                    "operation": f.operation,
                    "evidence": {
                        "request": f.evidence.request,
                        "response": f.evidence.response,
                    },
                    "remediation": f.remediation,
                },
            })
        })
        .collect();
    let mut invocation = json!({
        "executionSuccessful": true,
        "properties": {
            "requests": report.requests,
            "durationMs": report.duration_ms,
        },
    });
    if !report.started_at.is_empty() {
        invocation["startTimeUtc"] = json!(report.started_at);
    }
    let checks: Vec<Value> = report
        .checks
        .iter()
        .map(|c| {
            let mut check = json!({ "id": c.id.as_str(), "status": c.status });
            if let Some(reason) = &c.reason {
                check["reason"] = json!(reason);
            }
            check
        })
        .collect();
    let log = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "bulwark-audit",
                    "version": env!("CARGO_PKG_VERSION"),
                    "semanticVersion": env!("CARGO_PKG_VERSION"),
                    "informationUri": env!("CARGO_PKG_HOMEPAGE"),
                    "rules": rules,
                },
            },
            "invocations": [invocation],
            "results": results,
            "properties": {
                "target": report.target,
                "checks": checks,
            },
        }],
    });
    let mut text = serde_json::to_string_pretty(&log).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::sample_report;

    #[test]
    fn sarif_has_one_rule_per_finding_id_and_one_result_per_finding() {
        let report = sample_report();

        let log: Value = serde_json::from_str(&sarif(&report)).unwrap();

        assert_eq!(log["version"], "2.1.0");
        let runs = log["runs"].as_array().unwrap();
        assert_eq!(runs.len(), 1);
        let driver = &runs[0]["tool"]["driver"];
        assert_eq!(driver["name"], "bulwark-audit");
        assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));
        assert!(
            driver["informationUri"]
                .as_str()
                .unwrap()
                .starts_with("https://")
        );
        let rules = driver["rules"].as_array().unwrap();
        assert_eq!(rules.len(), CheckId::ALL.len());
        for (rule, id) in rules.iter().zip(CheckId::ALL) {
            assert_eq!(rule["id"], id.as_str());
            assert_eq!(rule["shortDescription"]["text"], id.title());
            assert_eq!(rule["help"]["text"], id.remediation());
            assert_eq!(rule["properties"]["tags"], json!(["security"]));
        }
        let rule_of = |id: &str| rules.iter().find(|r| r["id"] == id).unwrap();
        assert_eq!(
            rule_of("jwt-alg-none")["defaultConfiguration"]["level"],
            "error"
        );
        assert_eq!(
            rule_of("jwt-alg-none")["properties"]["security-severity"],
            "9.5"
        );
        assert_eq!(rule_of("bola")["defaultConfiguration"]["level"], "error");
        assert_eq!(rule_of("bola")["properties"]["security-severity"], "8.0");
        assert_eq!(rule_of("csrf")["defaultConfiguration"]["level"], "warning");
        assert_eq!(rule_of("csrf")["properties"]["security-severity"], "5.5");
        assert_eq!(
            rule_of("security-headers")["defaultConfiguration"]["level"],
            "note"
        );
        assert_eq!(
            rule_of("security-headers")["properties"]["security-severity"],
            "3.0"
        );

        let results = runs[0]["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        let bola = &results[0];
        assert_eq!(bola["ruleId"], "bola");
        assert_eq!(
            rules[bola["ruleIndex"].as_u64().unwrap() as usize]["id"],
            "bola"
        );
        assert_eq!(bola["level"], "error");
        let message = bola["message"]["text"].as_str().unwrap();
        assert!(message.contains(CheckId::Bola.title()), "{message}");
        assert!(message.contains("GET /items/{item_id}"), "{message}");
        let location = &bola["locations"][0];
        assert_eq!(
            location["physicalLocation"]["artifactLocation"]["uri"],
            "http://127.0.0.1:8000/"
        );
        assert_eq!(
            location["logicalLocations"][0]["name"],
            "GET /items/{item_id}"
        );
        assert!(
            bola["properties"]["evidence"]["response"]
                .as_str()
                .unwrap()
                .contains("\"owner\":\"a\"")
        );
        assert_eq!(results[1]["level"], "note");
        assert_eq!(
            runs[0]["invocations"][0]["startTimeUtc"],
            "2025-01-02T03:04:05Z"
        );
    }

    #[test]
    fn levels_and_scores_follow_the_severity() {
        assert_eq!(level(Severity::Critical), "error");
        assert_eq!(level(Severity::High), "error");
        assert_eq!(level(Severity::Medium), "warning");
        assert_eq!(level(Severity::Low), "note");
        assert_eq!(level(Severity::Info), "note");
        assert_eq!(security_severity(Severity::Info), "0.0");
    }

    #[test]
    fn sarif_of_a_clean_report_has_rules_and_no_result() {
        let mut report = sample_report();
        report.findings.clear();

        let log: Value = serde_json::from_str(&sarif(&report)).unwrap();

        assert_eq!(log["runs"][0]["results"], json!([]));
        assert_eq!(
            log["runs"][0]["tool"]["driver"]["rules"]
                .as_array()
                .unwrap()
                .len(),
            25
        );
    }
}
