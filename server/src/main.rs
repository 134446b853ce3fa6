//! The `aisle` binary. It only installs the allocator and hands over to
//! [`aisle_server::cli::main`], which parses arguments and runs the server.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    aisle_server::cli::main()
}
