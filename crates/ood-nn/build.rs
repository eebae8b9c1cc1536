//! Decides whether the final binaries must force-link `libtorch_cuda`.
//!
//! Rust links native libraries with `--as-needed`, and nothing in tch references a symbol of
//! `libtorch_cuda.so`, so the linker drops it and CUDA is silently unavailable at run time. We
//! cannot pass `-Wl,--no-as-needed` to downstream binaries from a library's build script, so
//! instead we set the cfg `eood_link_torch_cuda`, under which `src/cuda_link.rs` references one
//! C symbol of `libtorch_cuda.so`: that makes it a real dependency of every binary.
//!
//! The PyPI wheel of torch always ships `libtorch_cuda.so`, even on a CPU-only machine where the
//! CUDA libraries it needs are not installed (see scripts/setup-python.sh), so "present" means:
//! the file exists and `ldd` resolves all of its dependencies. `EOOD_TORCH_CUDA=0|1` overrides.
use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(eood_link_torch_cuda)");
    println!("cargo::rerun-if-env-changed=EOOD_TORCH_CUDA");
    println!("cargo::rerun-if-env-changed=LD_LIBRARY_PATH");
    // Set by torch-sys through its `links = "tch"` key.
    let Ok(lib_dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    let torch_cuda = Path::new(&lib_dir).join("libtorch_cuda.so");
    let link = match std::env::var("EOOD_TORCH_CUDA").as_deref() {
        Ok("0") => false,
        Ok("1") => torch_cuda.exists(),
        _ => torch_cuda.exists() && all_dependencies_resolve(&torch_cuda),
    };
    if link {
        println!("cargo::rustc-cfg=eood_link_torch_cuda");
        println!("cargo::rustc-link-search=native={lib_dir}");
        println!("cargo::rustc-link-lib=dylib=torch_cuda");
    }
}

fn all_dependencies_resolve(lib: &Path) -> bool {
    match Command::new("ldd").arg(lib).output() {
        Ok(out) => {
            out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("not found")
        }
        Err(_) => false,
    }
}
