//! Entry point: parse the command line, load settings, start logging, dispatch.

use clap::Parser as _;

/// mimalloc instead of the system allocator: a request makes a few dozen short-lived
/// allocations (header maps, bodies, boxed futures), and glibc's malloc/free cost about a sixth
/// of a cheap request's CPU; mimalloc's thread-local free lists cost a fraction of that
/// (docs/performance.md). The library crate sets no allocator: that choice is the binary's.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    // Everything the process creates (the database and its WAL files, the master key, the
    // outbox) is its owner's alone: files 0600, folders 0700.
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    // One rustls crypto provider (aws-lc-rs) for the whole process: TLS serving, database TLS.
    bulwark::tls::install_default_crypto_provider();
    let cli = bulwark_server::cli::Cli::parse();
    match bulwark_server::commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
