//! Entry point: parse the command line, load settings, start logging, dispatch.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    let cli = bulwark_server::cli::Cli::parse();
    match bulwark_server::commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
