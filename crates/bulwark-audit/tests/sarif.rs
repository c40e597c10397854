//! `output::sarif` against the official SARIF 2.1.0 JSON schema (tests/data/sarif/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bulwark_audit::{CheckId, CheckReport, CheckStatus, Evidence, Finding, Report, output};
use serde_json::Value;

fn schema() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sarif/sarif-schema-2.1.0.json"
    );
    let mut schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the schema file"))
            .expect("JSON");
    // The schema's `language` patterns (of `run` and `toolComponent`) end in a stray `]`, a
    // literal in ECMA-262 but refused by the crate's `regex` format check when it checks the
    // schema against its meta-schema: escape it (the same pattern), in memory only.
    let stray = "^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}]?$";
    let mut fixed = 0;
    for definition in ["run", "toolComponent"] {
        let language = &mut schema["definitions"][definition]["properties"]["language"]["pattern"];
        if *language == stray {
            *language = Value::from("^[a-zA-Z]{2}|^[a-zA-Z]{2}-[a-zA-Z]{2}\\]?$");
            fixed += 1;
        }
    }
    assert_eq!(
        fixed, 2,
        "the schema file changed: look at this work-around again"
    );
    schema
}

/// A report with a finding of every severity, odd characters in the evidence, and every check.
fn report() -> Report {
    let evidence = |request: &str, response: &str| Evidence {
        request: request.into(),
        response: response.into(),
    };
    let findings = vec![
        Finding::new(
            CheckId::JwtWeakSecret,
            "*",
            evidence(
                "GET /users/me\nAuthorization: Bearer ***",
                "HTTP/1.1 200 OK\n\n{\"username\":\"a\"}",
            ),
        ),
        Finding::new(
            CheckId::Bola,
            "GET /items/{item_id}",
            evidence("GET /items/7", "HTTP/1.1 200 OK\n\n{\"id\":7}"),
        ),
        Finding::new(
            CheckId::XssReflected,
            "GET /search",
            evidence(
                "GET /search?q=%3Cscript%3E",
                "HTTP/1.1 200 OK\ncontent-type: text/html\n\n<p><script>\u{0}\u{1b}</script>",
            ),
        ),
        Finding::new(
            CheckId::SecurityHeaders,
            "*",
            evidence("GET /", "HTTP/1.1 200 OK"),
        ),
        Finding::new(CheckId::OpenapiDrift, "POST /items", Evidence::default())
            .titled("POST /items answered 201, which the document does not describe"),
    ];
    let checks = CheckId::ALL
        .iter()
        .map(|&id| CheckReport {
            id,
            status: if findings.iter().any(|f| f.id == id) {
                CheckStatus::Failed
            } else {
                CheckStatus::Skipped
            },
            reason: None,
        })
        .collect();
    let mut report = Report {
        target: "http://127.0.0.1:8000/api/".into(),
        started_at: "2025-06-01T12:00:00.123456Z".into(),
        duration_ms: 4321,
        requests: 987,
        findings,
        checks,
    };
    report.sort();
    report
}

fn errors(instance: &Value) -> Vec<String> {
    let schema = schema();
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the schema compiles");
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let report = report();

    let log: Value = serde_json::from_str(&output::sarif(&report)).expect("SARIF is JSON");

    let errors = errors(&log);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 5);
    assert_eq!(
        log["runs"][0]["tool"]["driver"]["rules"]
            .as_array()
            .unwrap()
            .len(),
        CheckId::ALL.len()
    );
}

#[test]
fn sarif_of_a_clean_report_validates_too() {
    let mut report = report();
    report.findings.clear();
    report.started_at.clear();

    let log: Value = serde_json::from_str(&output::sarif(&report)).expect("SARIF is JSON");

    let errors = errors(&log);
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_validator_does_reject_a_broken_log() {
    // The schema is really checked: a result without a message, a level SARIF does not know,
    // a time that is not one.
    let mut log: Value = serde_json::from_str(&output::sarif(&report())).unwrap();
    log["runs"][0]["results"][0]
        .as_object_mut()
        .unwrap()
        .remove("message");
    log["runs"][0]["results"][1]["level"] = "severe".into();
    log["runs"][0]["invocations"][0]["startTimeUtc"] = "yesterday".into();

    let errors = errors(&log);

    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.contains("/startTimeUtc")),
        "formats are checked: {errors:#?}"
    );
}
