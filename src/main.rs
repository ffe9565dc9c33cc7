//! The `keel` binary: a thin shell over the library (see [`keel::cli`]).

fn main() -> std::process::ExitCode {
    keel::cli::run()
}
