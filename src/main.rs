// Many small allocations cross the server's threads (request buffers, JSON values,
// usage batches); glibc's allocator serialised them on arena locks under load.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    xagent::cli::main()
}
