use std::process::ExitCode;

/// jemalloc instead of glibc malloc, whose per-thread arenas left a busy server holding about
/// twice the memory it used (docs/BENCHMARKS.md, "Knowledge: vectors").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // The sandboxed text extractor: a child the server starts for PDF and DOCX files. It
    // runs before anything else (no config, no logging, no runtime) and limits itself first.
    if args.get(1).map(String::as_str) == Some("__extract") {
        let code = zentoria_knowledge::sandbox::child_main(&args[2..]);
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    zentoria::cli::main()
}
