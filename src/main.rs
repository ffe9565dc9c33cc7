//! The `keel` binary: a thin shell over the library (see [`keel::cli`]).

/// mimalloc instead of glibc malloc: the request path allocates small,
/// short-lived buffers, and glibc's allocator was about a fifth of keel's
/// CPU under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    keel::cli::run()
}
