fn main() -> std::process::ExitCode {
    match lumagate::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lumagate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
