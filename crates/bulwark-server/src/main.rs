//! Entry point: parse the command line, load settings, start logging, dispatch.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
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
