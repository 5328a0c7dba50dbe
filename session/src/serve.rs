//! `punktfunk serve`: binds every port, builds the [`Host`] and the protocols' servers around
//! it, and runs until SIGTERM or SIGINT.

use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use anyhow::Context;
use protocol::pairing::HostIdentity;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::apps;
use crate::config::Config;
use crate::gamestream::{nvhttp, rtsp, GameStream};
use crate::host::{Host, HostSetup, Ports};
use crate::state::State;
use crate::web::ApiState;
use crate::{http, mgmt};

/// Starts every server and runs until SIGTERM or SIGINT.
pub async fn run(
    config: Config,
    data_dir: PathBuf,
    config_file: Option<PathBuf>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    // Held until the host exits: two hosts on one data directory would overwrite each other's
    // paired clients.
    let _data_dir_lock = crate::state::DataDirLock::try_acquire(&data_dir)?.with_context(|| {
        format!(
            "another punktfunk host runs with the data directory {}",
            data_dir.display()
        )
    })?;
    // Taken before any port answers, so that a SIGHUP never meets the default action (exit).
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let (state, identity) = load_or_create_identity(&data_dir)?;
    let token = mgmt::ensure_token(&data_dir)?;
    let ports = Ports::from_base(config.host.port_base);
    let apps = apps::catalog(&config.apps, config.base_app.as_ref())?;
    let bind = crate::config::listen_address(&config.host)?;
    let media = streamer::Media::bind(bind, ports.video, ports.audio, ports.control)?;
    let http = http::listen((bind, ports.http).into())
        .with_context(|| format!("cannot listen on the HTTP port {}", ports.http))?;
    let https = http::listen((bind, ports.https).into())
        .with_context(|| format!("cannot listen on the HTTPS port {}", ports.https))?;
    let rtsp_listener = http::listen((bind, ports.rtsp).into())
        .with_context(|| format!("cannot listen on the RTSP port {}", ports.rtsp))?;
    let mgmt_listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, ports.mgmt))
        .await
        .with_context(|| format!("cannot listen on the management port {}", ports.mgmt))?;
    let console_listener = match config.console.enabled {
        true => {
            let listen = config.console.listen_address(bind)?;
            let port = config.console.port(config.host.port_base);
            Some(
                http::listen((listen, port).into())
                    .with_context(|| format!("cannot listen on the console port {port}"))?,
            )
        }
        false => None,
    };
    let tls = http::tls_acceptor(&identity, true)?;
    let console_tls = http::tls_acceptor(&identity, false)?;
    // Lives until the host exits: a private sound server stops with it.
    let sound = crate::sound::SoundServer::start(&data_dir.join("logs"));

    let host = Host::new(HostSetup {
        config,
        data_dir,
        identity,
        ports,
        apps,
        config_file,
        media,
        sound: sound.server().cloned(),
        state,
    });
    let gamestream = GameStream::new(host.clone());
    let native = crate::native::Native::new(host.clone())?;
    let api = ApiState {
        host: host.clone(),
        gamestream: gamestream.clone(),
        native: native.clone(),
    };
    info!(
        http = ports.http,
        https = ports.https,
        rtsp = ports.rtsp,
        mgmt = ports.mgmt,
        data_dir = %host.data_dir.display(),
        "punktfunk is serving"
    );
    tokio::spawn(nvhttp::serve_http(http, gamestream.clone()));
    tokio::spawn(nvhttp::serve_https(https, tls, gamestream.clone()));
    tokio::spawn(rtsp::serve(rtsp_listener, gamestream.clone()));
    tokio::spawn(mgmt::serve(mgmt_listener, api.clone(), token));
    if let Some(listener) = console_listener {
        let local = listener.local_addr()?;
        tokio::spawn(crate::web::serve(
            listener,
            "console",
            Some(console_tls),
            crate::web::console::router(api),
        ));
        crate::web::console::announce(&host.data_dir, local);
    } else {
        info!("the web console is off ([console] enabled = false); pair clients with `punktfunk pair PIN`");
    }
    let native_port = host.config().native.port(host.config().host.port_base);
    let native_endpoint = if host.config().native.enabled {
        let endpoint = crate::native::endpoint(&host, (bind, native_port).into())
            .with_context(|| format!("cannot listen on the punktfunk/1 port {native_port}"))?;
        tokio::spawn(crate::native::serve(endpoint.clone(), native.clone()));
        info!(port = native_port, "punktfunk/1 is serving (QUIC)");
        Some(endpoint)
    } else {
        None
    };
    let native_record = host
        .config()
        .native
        .enabled
        .then(|| crate::mdns::NativeRecord {
            port: native_port,
            fingerprint: native.fingerprint_hex(),
            id: host.state_snapshot().uniqueid,
        });
    let _mdns = crate::mdns::advertise_or_warn(&host.config(), ports.http, native_record);
    tokio::spawn(crate::host::sample_stats(Arc::downgrade(&host)));

    tokio::spawn(reload_on_hangup(hangup, Arc::downgrade(&host)));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("SIGINT: shutting down"),
    }
    let h = host.clone();
    tokio::task::spawn_blocking(move || h.stop_all_sessions()).await?;
    if let Some(endpoint) = native_endpoint {
        // The sessions' clients have been told; the close reaches the rest.
        endpoint.close(0u32.into(), b"the host stops");
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), endpoint.wait_idle()).await;
    }
    Ok(())
}

/// Reads the config file again at every SIGHUP.
async fn reload_on_hangup(mut hangup: tokio::signal::unix::Signal, host: Weak<Host>) {
    while hangup.recv().await.is_some() {
        let Some(host) = host.upgrade() else { return };
        match tokio::task::spawn_blocking(move || host.reload_config()).await {
            Ok(Ok(())) => info!("SIGHUP: reloaded the config file (the app catalog and the keys that apply to new sessions; the rest at the next start)"),
            Ok(Err(failure)) => warn!("SIGHUP: the config file was not reloaded: {failure}"),
            Err(e) => warn!(%e, "SIGHUP: the config file was not reloaded"),
        }
    }
}

fn load_or_create_identity(data_dir: &std::path::Path) -> anyhow::Result<(State, HostIdentity)> {
    let cert_path = data_dir.join("identity/cert.pem");
    let key_path = data_dir.join("identity/key.pem");
    if streamer::corpus::enabled() {
        if let Ok(bytes) = std::fs::read(data_dir.join(crate::state::STATE_FILE)) {
            streamer::corpus::record("state", &[&bytes]);
        }
    }
    let state = State::load(data_dir)?;
    let have_identity = cert_path.exists() || key_path.exists();
    if have_identity {
        let cert = std::fs::read(&cert_path)
            .with_context(|| format!("cannot read {}", cert_path.display()))?;
        let key = std::fs::read(&key_path)
            .with_context(|| format!("cannot read {}", key_path.display()))?;
        let identity = HostIdentity::from_pem(&cert, &key).map_err(|e| {
            anyhow::anyhow!(
                "the host identity in {} is unusable ({e}); it was left untouched",
                cert_path.parent().unwrap_or(data_dir).display()
            )
        })?;
        let state = match state {
            Some(s) => s,
            None => {
                let s = State::new(new_uuid()?);
                s.save(data_dir)?;
                s
            }
        };
        return Ok((state, identity));
    }
    info!("creating a new host identity");
    // Back-date a day so that clients with a slightly wrong clock accept the certificate.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let identity =
        HostIdentity::generate(now - 86_400).context("cannot create the host identity")?;
    crate::state::write_atomic(&key_path, identity.key_pem(), 0o600)?;
    crate::state::write_atomic(&cert_path, identity.cert_pem(), 0o644)?;
    let state = match state {
        Some(s) => s,
        None => {
            let s = State::new(new_uuid()?);
            s.save(data_dir)?;
            s
        }
    };
    Ok((state, identity))
}

fn new_uuid() -> anyhow::Result<String> {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02X}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}
