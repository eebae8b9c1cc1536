//! Where datasets live on disk: the cache directory and the other local places a source may
//! already be (a Debian package installed system-wide, the project's `../shared/data`).
//!
//! The cache directory is chosen, first match wins, by
//! 1. an explicit directory (the CLI's `--cache DIR`);
//! 2. the environment variable `EOOD_CACHE`;
//! 3. `<repo>/.cache` when the current directory is inside an energy-ood checkout (so a clone keeps
//!    its data beside itself, git-ignored, and `scripts/fetch-sources.sh` agrees without flags);
//! 4. `$XDG_CACHE_HOME/energy-ood`, else `~/.cache/energy-ood`.
//!
//! Layout inside the cache:
//! - `downloads/<dataset>/<file>`: files fetched from their publisher (`<file>.part` while in flight);
//! - `sources/deb/<package>/`: Debian packages unpacked with `dpkg-deb -x` (same tree as `/`),
//!   `sources/deb/<package>.version` marks a complete unpack;
//! - `fmnist-ood/`: the built Fashion-MNIST OOD benchmark.

use std::path::{Path, PathBuf};

/// Environment variable that overrides the cache directory.
pub const CACHE_ENV: &str = "EOOD_CACHE";
/// Environment variable that overrides (or, set to an empty string, disables) `../shared/data`.
pub const SHARED_DATA_ENV: &str = "EOOD_SHARED_DATA";

/// Which rule chose the cache directory (shown by `eood data path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheChoice {
    Flag,
    Env,
    Repo,
    User,
}

impl std::fmt::Display for CacheChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CacheChoice::Flag => "--cache",
            CacheChoice::Env => "$EOOD_CACHE",
            CacheChoice::Repo => "the checkout's .cache",
            CacheChoice::User => "the user cache",
        })
    }
}

/// The cache directory and its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Cache { root: root.into() }
    }

    /// Chooses the cache directory by the rules in the module documentation.
    pub fn locate(flag: Option<&Path>) -> (Cache, CacheChoice) {
        if let Some(dir) = flag {
            return (Cache::new(dir), CacheChoice::Flag);
        }
        if let Some(dir) = std::env::var_os(CACHE_ENV).filter(|v| !v.is_empty()) {
            return (Cache::new(PathBuf::from(dir)), CacheChoice::Env);
        }
        if let Some(repo) = std::env::current_dir()
            .ok()
            .and_then(|d| find_repo_root(&d))
        {
            return (Cache::new(repo.join(".cache")), CacheChoice::Repo);
        }
        (Cache::new(user_cache_dir()), CacheChoice::User)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `downloads/<dataset>`: where fetched files of a dataset are kept.
    pub fn downloads(&self, dataset: &str) -> PathBuf {
        self.root.join("downloads").join(dataset)
    }

    /// `sources/deb`: where Debian packages are unpacked.
    pub fn deb_root(&self) -> PathBuf {
        self.root.join("sources").join("deb")
    }

    /// `sources/deb/<package>`: the unpacked tree of one package (mirrors `/`).
    pub fn deb_package(&self, package: &str) -> PathBuf {
        self.deb_root().join(package)
    }

    /// `<name>`: a built dataset such as `fmnist-ood`.
    pub fn built(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

fn user_cache_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("energy-ood");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("energy-ood"),
        None => PathBuf::from(".cache").join("energy-ood"),
    }
}

/// The energy-ood checkout containing `start`: the nearest ancestor holding both a `Cargo.toml`
/// and `crates/ood-data/Cargo.toml`.
pub fn find_repo_root(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|d| d.join("Cargo.toml").is_file() && d.join("crates/ood-data/Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

/// Every local place a source may be found, besides the publisher's URLs.
#[derive(Debug, Clone)]
pub struct Locations {
    pub cache: Cache,
    /// The project's kept data (`<repo>/../shared/data`), when it exists.
    pub shared_data: Option<PathBuf>,
    /// Root under which system-installed Debian packages are looked for (`/`; tests use a temp dir).
    pub system_root: PathBuf,
}

impl Locations {
    /// The usual places: the given cache, `/` for installed packages, and the shared data folder
    /// (`$EOOD_SHARED_DATA` when set, empty = none; else `../shared/data` beside the checkout).
    pub fn standard(cache: Cache) -> Self {
        let shared_data = match std::env::var_os(SHARED_DATA_ENV) {
            Some(v) if v.is_empty() => None,
            Some(v) => Some(PathBuf::from(v)),
            None => std::env::current_dir()
                .ok()
                .and_then(|d| find_repo_root(&d))
                .and_then(|repo| repo.parent().map(|p| p.join("shared").join("data"))),
        }
        .filter(|p| p.is_dir());
        Locations {
            cache,
            shared_data,
            system_root: PathBuf::from("/"),
        }
    }

    /// Only the cache (no system packages, no shared data): what tests use.
    pub fn cache_only(cache: Cache) -> Self {
        Locations {
            cache,
            shared_data: None,
            system_root: PathBuf::from("/nonexistent-system-root"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_is_found_from_a_subdirectory() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let root = find_repo_root(&here).expect("inside the checkout");
        assert!(root.join("crates/ood-data/Cargo.toml").is_file());
        assert!(find_repo_root(Path::new("/")).is_none());
    }

    #[test]
    fn explicit_flag_wins() {
        let (c, why) = Cache::locate(Some(Path::new("/tmp/x")));
        assert_eq!(c.root(), Path::new("/tmp/x"));
        assert_eq!(why, CacheChoice::Flag);
        assert_eq!(
            c.deb_package("gimp-data"),
            Path::new("/tmp/x/sources/deb/gimp-data")
        );
        assert_eq!(
            c.downloads("mnist-test"),
            Path::new("/tmp/x/downloads/mnist-test")
        );
    }
}
