//! Makes `libtorch_cuda.so` a real dependency of every binary when build.rs found a usable CUDA
//! install (see build.rs for why `--as-needed` would otherwise drop it).
#[cfg(eood_link_torch_cuda)]
mod keep {
    extern "C" {
        // A C-ABI symbol exported by libtorch_cuda (AOTInductor shim); never called.
        fn aoti_torch_create_cuda_guard();
    }
    #[used]
    static KEEP_TORCH_CUDA: unsafe extern "C" fn() = aoti_torch_create_cuda_guard;
}

/// Whether this build force-links libtorch_cuda (CUDA usable when a GPU and driver are present).
pub const LINKS_TORCH_CUDA: bool = cfg!(eood_link_torch_cuda);
