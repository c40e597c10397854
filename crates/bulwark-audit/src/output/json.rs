//! `--format json`: the report as the contract shapes it.

use crate::Report;

/// The report as pretty JSON: `target`, `started_at`, `duration_ms`, `requests`, `findings`,
/// `checks`, in that order (the order of [`Report`]'s fields), findings sorted the documented
/// way, so that two runs diff line by line.
pub fn json(report: &Report) -> String {
    // A report is strings, numbers and enums with string names: serializing it cannot fail.
    let mut text = serde_json::to_string_pretty(report).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("cannot render the report: {e}") }).to_string()
    });
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::output::sample_report;

    #[test]
    fn json_has_the_contract_fields_in_order() {
        let report = sample_report();

        let text = json(&report);

        let keys = [
            "\"target\"",
            "\"started_at\"",
            "\"duration_ms\"",
            "\"requests\"",
            "\"findings\"",
            "\"checks\"",
        ];
        let positions: Vec<usize> = keys
            .iter()
            .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} missing")))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["target"], "http://127.0.0.1:8000/");
        assert_eq!(value["duration_ms"], 1234);
        assert_eq!(value["requests"], 56);
        let finding = &value["findings"][0];
        assert_eq!(finding["id"], "bola");
        assert_eq!(finding["severity"], "high");
        assert_eq!(finding["operation"], "GET /items/{item_id}");
        assert!(finding["evidence"]["request"].is_string());
        assert!(finding["evidence"]["response"].is_string());
        assert!(finding["remediation"].is_string());
        let first = &text[text.find("\"findings\"").unwrap()..];
        let at: Vec<usize> = [
            "\"id\"",
            "\"severity\"",
            "\"title\"",
            "\"operation\"",
            "\"evidence\"",
            "\"remediation\"",
        ]
        .iter()
        .map(|k| first.find(k).unwrap())
        .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
        let checks = value["checks"].as_array().unwrap();
        assert_eq!(checks.len(), 25);
        assert_eq!(checks[0]["id"], "jwt-alg-none");
        assert_eq!(checks[0]["status"], "skipped");
        assert_eq!(checks[0]["reason"], "nothing to test");
        let passed = checks.iter().find(|c| c["id"] == "ssti").unwrap();
        assert_eq!(passed["status"], "passed");
        assert!(passed.get("reason").is_none());
    }

    #[test]
    fn json_round_trips_and_is_stable() {
        let report = sample_report();

        let text = json(&report);

        let back: Report = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        assert_eq!(json(&back), text);
        assert!(text.ends_with("}\n"));
    }
}
