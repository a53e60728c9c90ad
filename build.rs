//! Lays out the `curfew` binary's code so that what a running daemon executes sits
//! together: the functions named in `link/symbol-order.txt` (made by `.ci/symbol-order`
//! from a run of the daemon under Valgrind's callgrind) come first in `.text`. The kernel
//! maps a binary's code 64 KiB around each page the program touches, so with the few
//! thousand functions a daemon runs spread over 12 MB of code, nearly all of it ends up
//! resident; packed, only what runs is (docs/daemon.md, "Resources").
//!
//! lld's option: applied where the Rust toolchain links with its own lld
//! (x86_64-unknown-linux-gnu since Rust 1.90); `SYMBOL_ORDER=off` turns it off (not a
//! `CURFEW_*` name: those are the daemon's settings). A
//! function the list names that a build no longer has is skipped without a word; one it
//! does not name is laid out after those it does, as before.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=link/symbol-order.txt");
    println!("cargo:rerun-if-env-changed=SYMBOL_ORDER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let off = std::env::var("SYMBOL_ORDER").is_ok_and(|v| v == "off");
    if target != "x86_64-unknown-linux-gnu" || off {
        return;
    }
    let Ok(dir) = std::env::var("CARGO_MANIFEST_DIR") else {
        return;
    };
    let order = std::path::Path::new(&dir).join("link/symbol-order.txt");
    if order.is_file() {
        println!(
            "cargo:rustc-link-arg-bin=curfew=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=curfew=-Wl,--no-warn-symbol-ordering");
    }
}
