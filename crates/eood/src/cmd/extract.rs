//! `eood extract` (not implemented yet: owned by its issue).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`eood extract` is not implemented yet")
}
