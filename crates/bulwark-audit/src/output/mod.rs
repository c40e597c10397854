//! The report as people and tools read it: text, JSON, SARIF 2.1.0.
