use std::process::ExitCode;

fn main() -> ExitCode {
    zentoria::cli::main()
}
