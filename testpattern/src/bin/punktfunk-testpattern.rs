//! `punktfunk-testpattern [--width W] [--height H] [--max-frames N] [--exit-after SECONDS]
//! [--noise] [--timestamps] [--frame-events]`
//!
//! Runs the test pattern (see the `testpattern` crate) against the compositor in the environment.

use std::time::Duration;

use anyhow::{bail, Context as _};

fn main() -> anyhow::Result<()> {
    let opts = parse_args(std::env::args().skip(1))?;
    testpattern::run(opts)
}

fn parse_args(mut args: impl Iterator<Item = String>) -> anyhow::Result<testpattern::Options> {
    let mut opts = testpattern::Options::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--width" => opts.width_hint = Some(value("--width")?.parse().context("--width")?),
            "--height" => opts.height_hint = Some(value("--height")?.parse().context("--height")?),
            "--max-frames" => {
                opts.max_frames = Some(value("--max-frames")?.parse().context("--max-frames")?)
            }
            "--exit-after" => {
                let secs: f64 = value("--exit-after")?.parse().context("--exit-after")?;
                opts.exit_after =
                    Some(Duration::try_from_secs_f64(secs).context("--exit-after must be >= 0")?);
            }
            "--noise" => opts.noise = true,
            "--timestamps" => opts.timestamps = true,
            "--frame-events" => opts.frame_events = true,
            "-h" | "--help" => {
                println!(
                    "usage: punktfunk-testpattern [--width W] [--height H] [--max-frames N] \
                     [--exit-after SECONDS] [--noise] [--timestamps] [--frame-events]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(opts)
}
