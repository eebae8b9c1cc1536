//! `eood mahalanobis` (not implemented yet: owned by its issue).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`eood mahalanobis` is not implemented yet")
}
