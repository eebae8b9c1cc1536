//! `eood data` (not implemented yet: owned by its issue).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`eood data` is not implemented yet")
}
