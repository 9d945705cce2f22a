//! `tributary-api`: the server binary. `tributary-api [--config FILE]`.

use std::path::PathBuf;
use std::process::ExitCode;
use tributary_api::config::Settings;

/// mimalloc: list pages allocate and free many small strings from several threads at once, where
/// glibc's allocator spent a third of the server's CPU (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn usage() -> &'static str {
    "usage: tributary-api [--config FILE]\n\nConfiguration: defaults, then tributary.toml (or --config FILE), then TRIBUTARY_* environment variables.\nSee docs/configuration.md."
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut config: Option<PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" | "-c" => match args.next() {
                Some(p) => config = Some(PathBuf::from(p)),
                None => {
                    eprintln!("error: --config needs a file\n{}", usage());
                    return ExitCode::from(2);
                }
            },
            "--help" | "-h" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            "--version" | "-V" => {
                println!("tributary-api {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("error: unexpected argument {other}\n{}", usage());
                return ExitCode::from(2);
            }
        }
    }
    let settings = match Settings::load(config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    tributary_api::init_logging(&settings.log, &settings.log_format);
    match tributary_api::serve(settings, tributary_api::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
