// glibc's allocator costs a large share of each poll's CPU time (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    match lumagate::cli::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lumagate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
