//! The `turf` binary: parse the command line, run the command in an actix system, report errors.

use std::process::ExitCode;

use clap::Parser;
use turf_host::cli::{Cli, execute};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match actix_rt::System::new().block_on(execute(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
