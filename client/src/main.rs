//! `punktfunk-client`: the reference client of punktfunk/1.
//!
//! - `pair HOST --pin PIN`: the PIN exchange ([`protocol::native::pairing`]); on success the
//!   host's certificate fingerprint is pinned in `hosts.json`.
//! - `list HOST`: the host's apps.
//! - `stream HOST --mode WxH@R`: `Hello → Welcome → Start`, then the data plane on native
//!   threads (receive, reassemble, decode), control messages (mode changes, keyframe requests,
//!   loss reports, clock probes) on the async runtime, and a report of what arrived.
//!
//! Every connection presents the client's own certificate (made once, kept in the state
//! directory) and checks the host's against its pin; only `pair` accepts a host it has no pin
//! for.

mod args;
mod audio;
mod clock;
mod data;
mod decode;
mod quic;
mod report;
mod state;
mod stream;

use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Parser;
use protocol::native::control::{CloseCode, Message};
use protocol::native::pairing::{fingerprint, fingerprint_hex, ClientPairing, PairingError};
use protocol::pairing::HostIdentity;

use crate::args::{Cli, Command, HostArg};
use crate::quic::HostTrust;
use crate::state::Pins;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("punktfunk-client: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("punktfunk-client: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = state::state_dir(cli.state_dir)?;
    let identity = state::load_or_create_identity(&dir)?;
    let mut pins = Pins::load(&dir)?;
    match cli.command {
        Command::Pair { host, pin, name } => {
            let name = name.unwrap_or_else(machine_name);
            let fp = pair(&host, &identity, &pin, &name).await?;
            let hex = fingerprint_hex(&fp);
            let replaced = pins.insert(&host.to_string(), &hex);
            pins.save(&dir)?;
            match replaced {
                Some(old) if old != hex => {
                    println!("paired with {host} (certificate {hex}, replacing the old pin {old})")
                }
                _ => println!("paired with {host} (certificate {hex})"),
            }
            Ok(())
        }
        Command::List { host } => {
            let trust = pinned(&pins, &host)?;
            let mut control = quic::connect(&host, &identity, trust).await?;
            control.send(&Message::ListApps).await?;
            let reply = control.recv().await?;
            let result = match reply {
                Message::Apps { entries } => {
                    for app in entries {
                        println!("{}\t{}", app.id, app.name);
                    }
                    Ok(())
                }
                Message::Close { code, reason } => Err(closed_by_host(&host, code, &reason)),
                other => Err(anyhow::anyhow!("the host answered ListApps with {other:?}")),
            };
            control.finish().await;
            result
        }
        Command::Stream(args) => {
            let trust = pinned(&pins, &args.host)?;
            stream::run(*args, &identity, trust, machine_name()).await
        }
    }
}

/// Pairs with `host`; returns the host certificate's fingerprint.
async fn pair(
    host: &HostArg,
    identity: &HostIdentity,
    pin: &str,
    name: &str,
) -> anyhow::Result<protocol::native::pairing::Fingerprint> {
    let mut control = quic::connect(host, identity, HostTrust::Learn).await?;
    let host_fp = control.host_fingerprint;
    let (pairing, spake_a) = ClientPairing::start(
        pin,
        fingerprint(&identity.cert_der()),
        host_fp,
        rand::rngs::OsRng,
    );
    control
        .send(&Message::PairRequest {
            name: name.to_owned(),
            spake_a,
        })
        .await?;
    let result = async {
        let (spake_b, confirm) = match control.recv().await? {
            Message::PairChallenge { spake_b, confirm } => (spake_b, confirm),
            Message::Close { code, reason } => return Err(closed_by_host(host, code, &reason)),
            other => bail!("the host answered PairRequest with {other:?}"),
        };
        let proof = match pairing.finish(&spake_b, &confirm) {
            Ok(p) => p,
            Err(e) => {
                let reason = match e {
                    PairingError::Mismatch => "the PIN did not match".to_owned(),
                    other => other.to_string(),
                };
                control
                    .send(&Message::Close {
                        code: CloseCode::Error,
                        reason: reason.clone(),
                    })
                    .await?;
                bail!("{reason}");
            }
        };
        control.send(&Message::PairProof { confirm: proof }).await?;
        match control.recv().await? {
            Message::PairResult { ok: true } => Ok(host_fp),
            Message::PairResult { ok: false } => bail!("the host refused the pairing"),
            Message::Close { code, reason } => Err(closed_by_host(host, code, &reason)),
            other => bail!("the host answered PairProof with {other:?}"),
        }
    }
    .await;
    control.finish().await;
    result
}

/// The pin of `host`, or the error that says to pair first.
fn pinned(pins: &Pins, host: &HostArg) -> anyhow::Result<HostTrust> {
    let key = host.to_string();
    let Some(hex) = pins.get(&key) else {
        bail!(
            "not paired with {key}: run punktfunk-client pair {key} --pin PIN with the PIN the \
             host shows"
        );
    };
    let fp = parse_fingerprint(hex).with_context(|| format!("the pin of {key} is broken"))?;
    Ok(HostTrust::Pinned(fp))
}

fn parse_fingerprint(hex: &str) -> anyhow::Result<protocol::native::pairing::Fingerprint> {
    let mut fp = [0u8; 32];
    if hex.len() != 64 || !hex.is_ascii() {
        bail!("{hex:?} is not 64 hex digits");
    }
    for (i, b) in fp.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
            .with_context(|| format!("{hex:?} is not hex"))?;
    }
    Ok(fp)
}

/// The error for a host's `Close`.
pub(crate) fn closed_by_host(host: &HostArg, code: CloseCode, reason: &str) -> anyhow::Error {
    let what = match code {
        CloseCode::NotPaired => {
            format!("{host} does not know this client: run punktfunk-client pair {host}")
        }
        code => format!("{host} closed the connection ({code:?})"),
    };
    if reason.is_empty() {
        anyhow::anyhow!(what)
    } else {
        anyhow::anyhow!("{what}: {reason}")
    }
}

/// This machine's host name, the default name the host lists the client under.
fn machine_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "punktfunk-client".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_from_hex() {
        let fp = [0xab; 32];
        assert_eq!(parse_fingerprint(&fingerprint_hex(&fp)).unwrap(), fp);
        assert!(parse_fingerprint("ab").is_err());
        assert!(parse_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn streaming_needs_a_pin() {
        let host: HostArg = "box:7".parse().unwrap();
        let err = pinned(&Pins::default(), &host).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("not paired with box:7: run punktfunk-client pair"),
            "{err}"
        );
    }
}
