//! docs/audit.md documents every finding ID: a row in its table and a section of its own.

use bulwark_audit::CheckId;

#[test]
fn every_finding_id_is_documented() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/audit.md"))
        .expect("docs/audit.md");
    for id in CheckId::ALL {
        let row = format!("| `{id}` | {} |", id.severity());
        assert!(docs.contains(&row), "docs/audit.md: no table row {row:?}");
        let section = format!("### `{id}`\n");
        assert!(
            docs.contains(&section),
            "docs/audit.md: no section for {id}"
        );
    }
}
