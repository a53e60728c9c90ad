//! The `curfew` binary: a thin shell over [`curfew::cli`].

fn main() -> std::process::ExitCode {
    curfew::cli::main()
}
