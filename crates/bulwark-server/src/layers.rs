//! How the server's modules depend on each other: downwards only.
//!
//! ```text
//! top       main, lib, commands, startup      build everything, run it
//!           state (AppState)                  what the routes are handed
//!           routes/*                          extract, call a service, answer
//! services  login, sessions, pages, users     what a request does
//! leaves    audit, metrics, refusals, retention, telemetry, sockets, checks, https
//! bottom    errors, config, db, domain, events, auth, cli
//! ```
//!
//! Routes call services, services call stores and leaves, and a leaf takes the narrow thing it
//! needs (an audit repository, a refusal log, plain values), never the application state: only
//! the top modules (and the routes) name [`crate::state`] or [`crate::routes`]. The test below
//! reads the sources and fails when a module below them does, so that the import circle of
//! issue #21 cannot come back.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The modules allowed to import the routes and the application state.
    const TOP: &[&str] = &[
        "main.rs",
        "lib.rs",
        "commands.rs",
        "startup.rs",
        "state.rs",
        "layers.rs",
    ];

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// Whether a `use crate::{...}` group names `routes` or `state` as an item.
    fn group_names_top(source: &str) -> Option<&'static str> {
        let mut rest = source;
        while let Some(at) = rest.find("crate::{") {
            let group = &rest[at + "crate::{".len()..];
            let end = group.find(';').unwrap_or(group.len());
            let group = &group[..end];
            let items = group.split(['{', ',', '}']);
            for item in items {
                let item = item.trim();
                for top in ["routes", "state"] {
                    if item == top || item.starts_with(&format!("{top}::")) {
                        return Some(top);
                    }
                }
            }
            rest = &rest[at + 1..];
        }
        None
    }

    #[test]
    fn no_module_below_the_routes_imports_the_routes_or_the_state() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        assert!(files.len() > 20, "the sources were not found: {files:?}");
        let mut offenders = Vec::new();
        for file in files {
            let relative = file.strip_prefix(&src).expect("under src");
            let name = relative.to_string_lossy().replace('\\', "/");
            if name.starts_with("routes/") || TOP.contains(&name.as_str()) {
                continue;
            }
            let source = std::fs::read_to_string(&file).expect("read source");
            for needle in ["crate::routes", "crate::state", "AppState"] {
                if source.contains(needle) {
                    offenders.push(format!("{name} mentions `{needle}`"));
                }
            }
            if let Some(top) = group_names_top(&source) {
                offenders.push(format!("{name} imports `{top}` from `crate::{{...}}`"));
            }
        }
        assert!(
            offenders.is_empty(),
            "modules below the routes must take what they need, never the routes or the \
             application state (see crate::layers):\n{}",
            offenders.join("\n")
        );
    }

    #[test]
    fn the_check_sees_grouped_imports() {
        assert_eq!(
            group_names_top("use crate::{db, routes, x};"),
            Some("routes")
        );
        assert_eq!(
            group_names_top("use crate::{\n    db,\n    state::AppState,\n};"),
            Some("state")
        );
        assert_eq!(group_names_top("use crate::{db::State, staters};"), None);
    }
}
