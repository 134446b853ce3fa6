//! The `aisle` binary, built inside the tests package so the integration tests can locate it
//! with `env!("CARGO_BIN_EXE_aisle-server")`: Cargo exposes only a package's own binaries to
//! its tests. Same allocator, same entry point as `server/src/main.rs`; nothing else.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aisle_server::cli::main()
}
