//! The `aisle-loadtest` binary; see `loadtest/README.md`.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(aisle_loadtest::cli::main());
}
