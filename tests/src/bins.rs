//! Locating the `meshd` and `meshctl` binaries.
//!
//! Cargo only gives `CARGO_BIN_EXE_<name>` to tests of the binary's own package, so this crate
//! looks for the binaries next to its own executable: `MESHD_BIN` / `MESHCTL_BIN` when set, else
//! the directory of `current_exe()` (a bin such as `mesh-bench`) or its parent (an integration
//! test lives in `target/<profile>/deps/`).

use std::path::PathBuf;

fn locate(env: &str, name: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return p;
        }
        panic!(
            "{env}={} does not exist; build them first: cargo build --workspace --bins",
            p.display()
        );
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut tried = Vec::new();
    let mut dir = exe.parent().map(|p| p.to_path_buf());
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let cand = d.join(name);
        if cand.is_file() {
            return cand;
        }
        tried.push(cand);
        dir = d.parent().map(|p| p.to_path_buf());
    }
    panic!("{name} not found (tried {tried:?}; or set {env}); build them first: cargo build --workspace --bins");
}

/// Path of the `meshd` binary.
pub fn meshd() -> PathBuf {
    locate("MESHD_BIN", "meshd")
}

/// Path of the `meshctl` binary.
pub fn meshctl() -> PathBuf {
    locate("MESHCTL_BIN", "meshctl")
}
