//! `eood bench` (not implemented yet: owned by its issue).

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`eood bench` is not implemented yet")
}
