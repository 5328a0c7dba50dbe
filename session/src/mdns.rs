//! Discovery: the host advertises itself on the local network as `_nvstream._tcp`, the service
//! type Moonlight browses for, so that clients list it without an address being typed in; and,
//! where punktfunk/1 is on, as `_punktfunk._udp` on its QUIC port with TXT `proto=punktfunk/1`,
//! `fp=` (the SHA-256 of the host's certificate, which a native client pins) and `id=` (the
//! host's uniqueid).
//!
//! The instance name is the configured host name (`[host] name`), the port is the HTTP port;
//! the addresses are those of every interface, kept current by the responder as they change.
//! The responder runs on its own thread (mdns-sd's daemon) and withdraws the record when the
//! [`Advertisement`] is dropped. A network without multicast is no reason to stop the host:
//! [`advertise_or_warn`] logs why discovery is off and the host serves on.

use anyhow::Context;
use mdns_sd::{ServiceDaemon, ServiceInfo};
use tracing::{debug, info, warn};

use crate::config::Config;

/// The DNS-SD service type of GameStream hosts.
pub const SERVICE_TYPE: &str = "_nvstream._tcp.local.";

/// The DNS-SD service type of punktfunk/1 hosts.
pub const NATIVE_SERVICE_TYPE: &str = "_punktfunk._udp.local.";

/// What the `_punktfunk._udp` record says.
#[derive(Debug, Clone)]
pub struct NativeRecord {
    /// The QUIC port.
    pub port: u16,
    /// The host certificate's SHA-256, lower-case hex.
    pub fingerprint: String,
    /// The host's uniqueid.
    pub id: String,
}

/// A running advertisement; dropping it sends the goodbye and stops the responder.
pub struct Advertisement {
    daemon: ServiceDaemon,
    fullnames: Vec<String>,
}

/// Starts advertising when the config asks for it; a failure is logged, never fatal.
pub fn advertise_or_warn(
    config: &Config,
    http_port: u16,
    native: Option<NativeRecord>,
) -> Option<Advertisement> {
    if !config.host.mdns {
        info!("mDNS advertisement is off (host.mdns = false)");
        return None;
    }
    match advertise(&config.host.name, http_port, native.as_ref()) {
        Ok(ad) => {
            info!(name = %config.host.name, service = SERVICE_TYPE, port = http_port, "advertising on the local network");
            Some(ad)
        }
        Err(e) => {
            warn!(
                err = %format!("{e:#}"),
                "cannot advertise the host with mDNS; clients must add it by address"
            );
            None
        }
    }
}

/// Advertises `instance` as a GameStream host on `port`, and as a punktfunk/1 host where
/// `native` is given.
pub fn advertise(
    instance: &str,
    port: u16,
    native: Option<&NativeRecord>,
) -> anyhow::Result<Advertisement> {
    let instance = instance_name(instance);
    let host_name = format!(
        "{}.local.",
        dns_label(&system_hostname().unwrap_or_else(|| instance.clone()))
    );
    let daemon = ServiceDaemon::new().context("cannot start the mDNS responder")?;
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        &instance,
        &host_name,
        "",
        port,
        None::<std::collections::HashMap<String, String>>,
    )
    .context("cannot build the mDNS record")?
    .enable_addr_auto();
    let mut fullnames = vec![info.get_fullname().to_string()];
    daemon
        .register(info)
        .context("cannot register the mDNS record")?;
    if let Some(n) = native {
        let txt = [
            ("proto", protocol::native::PROTOCOL_NAME),
            ("fp", n.fingerprint.as_str()),
            ("id", n.id.as_str()),
        ];
        let info = ServiceInfo::new(
            NATIVE_SERVICE_TYPE,
            &instance,
            &host_name,
            "",
            n.port,
            &txt[..],
        )
        .context("cannot build the punktfunk/1 mDNS record")?
        .enable_addr_auto();
        fullnames.push(info.get_fullname().to_string());
        daemon
            .register(info)
            .context("cannot register the punktfunk/1 mDNS record")?;
    }
    Ok(Advertisement { daemon, fullnames })
}

impl Drop for Advertisement {
    fn drop(&mut self) {
        for fullname in &self.fullnames {
            if let Ok(rx) = self.daemon.unregister(fullname) {
                // Wait briefly so that the goodbye packet leaves before the responder stops.
                let _ = rx.recv_timeout(std::time::Duration::from_millis(500));
            }
        }
        if let Err(e) = self.daemon.shutdown() {
            debug!(%e, "mDNS responder did not shut down cleanly");
        }
    }
}

/// A DNS-SD instance name: at most 63 bytes (cut at a character boundary), never empty.
fn instance_name(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        return "punktfunk".into();
    }
    let mut end = name.len().min(63);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// A host label for the A/AAAA records: letters, digits and dashes, 1 to 63 bytes.
fn dns_label(name: &str) -> String {
    let label: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "punktfunk".into()
    } else {
        label.to_string()
    }
}

fn system_hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().split('.').next()?.to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_labels_are_valid_dns_labels() {
        assert_eq!(dns_label("Gaming PC"), "gaming-pc");
        assert_eq!(dns_label("--"), "punktfunk");
        assert_eq!(dns_label("wohnzimmer.fritz.box"), "wohnzimmer-fritz-box");
        assert_eq!(dns_label(&"x".repeat(100)).len(), 63);
    }

    #[test]
    fn instance_names_are_cut_at_a_character_boundary() {
        assert_eq!(instance_name("  Wohnzimmer  "), "Wohnzimmer");
        assert_eq!(instance_name(""), "punktfunk");
        let long = "ü".repeat(40); // 80 bytes
        let cut = instance_name(&long);
        assert!(cut.len() <= 63 && cut.chars().all(|c| c == 'ü'), "{cut}");
    }
}
