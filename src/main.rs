fn main() -> std::process::ExitCode {
    xagent::cli::main()
}
