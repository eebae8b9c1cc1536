//! With the `nn` feature, record libtorch's library folder as an rpath of the binary, so that
//! an installed `eood` (`cargo install --path crates/eood`) finds `libtorch_cpu.so` at run time
//! without LD_LIBRARY_PATH. The folder is `$LIBTORCH/lib` (scripts/env.sh sets LIBTORCH); with
//! `LIBTORCH_USE_PYTORCH=1` instead, torch-sys finds libtorch through Python and no rpath is
//! added: set LIBTORCH for an installable build (docs/deploy.md).
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let unix_like = matches!(
        std::env::var("CARGO_CFG_TARGET_OS").as_deref(),
        Ok("linux" | "macos" | "freebsd")
    );
    if std::env::var_os("CARGO_FEATURE_NN").is_none() || !unix_like {
        return;
    }
    if let Some(root) = std::env::var_os("LIBTORCH") {
        let lib = Path::new(&root).join("lib");
        if lib.is_dir() {
            // absolute, so the binary runs from anywhere once installed
            let lib = lib.canonicalize().unwrap_or(lib);
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
    }
}
