//! The configuration as the host runs it: `store::config` reads and checks `config.toml`; this
//! module turns its sections into the streamer's options and picks the listening address.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use anyhow::Context;
use streamer::encode::{EncoderPreference, HardwareOptions};
use streamer::gamepad::mapping::Layout;
use streamer::gamepad::GamepadOptions;

pub use store::config::*;

/// The address the client-facing ports listen on: `host.bind`, or the IPv6 wildcard (which takes
/// IPv4 clients too) where `bind` is the IPv4 wildcard, `address_family` is "both" and the
/// machine has IPv6.
pub fn listen_address(host: &HostConfig) -> anyhow::Result<IpAddr> {
    let bind: IpAddr = host
        .bind
        .parse()
        .with_context(|| format!("host.bind {:?} is not an IP address", host.bind))?;
    if !(bind.is_unspecified() && bind.is_ipv4() && host.address_family == AddressFamily::Both) {
        return Ok(bind);
    }
    let wildcard = SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0);
    match streamer::net::bind_udp(wildcard) {
        Ok(_) => Ok(Ipv6Addr::UNSPECIFIED.into()),
        Err(e) => {
            tracing::warn!(%e, "IPv6 is not available here; listening for IPv4 clients only");
            Ok(bind)
        }
    }
}

/// The encoder settings for the streamer. A value [`Config::parse`] would have refused reads as
/// "auto".
pub fn hardware(video: &VideoConfig) -> HardwareOptions {
    HardwareOptions {
        preference: video
            .encoder
            .as_ref()
            .and_then(|e| EncoderPreference::from_name(e.get_ref()))
            .unwrap_or_default(),
        vaapi_device: video.vaapi_device.clone(),
    }
}

/// The compositor's renderer choice for `video.renderer`.
pub fn renderer(setting: RendererSetting) -> compositor::RendererChoice {
    match setting {
        RendererSetting::Auto => compositor::RendererChoice::Auto,
        RendererSetting::Gles => compositor::RendererChoice::Gles,
        RendererSetting::Pixman => compositor::RendererChoice::Pixman,
    }
}

/// The compositor's scaling for `video.scaling`.
pub fn scaling(setting: ScalingSetting) -> compositor::Scaling {
    match setting {
        ScalingSetting::Fit => compositor::Scaling::Fit,
        ScalingSetting::Stretch => compositor::Scaling::Stretch,
        ScalingSetting::Fill => compositor::Scaling::Fill,
        ScalingSetting::Integer => compositor::Scaling::Integer,
    }
}

/// The compositor's filter for `video.scale_filter`.
pub fn scale_filter(setting: ScaleFilterSetting) -> compositor::ScaleFilter {
    match setting {
        ScaleFilterSetting::Linear => compositor::ScaleFilter::Linear,
        ScaleFilterSetting::Nearest => compositor::ScaleFilter::Nearest,
    }
}

/// The gamepad settings a stream starts with.
pub fn gamepads(input: &InputConfig) -> GamepadOptions {
    GamepadOptions {
        playstation: match input.playstation_pad {
            PlaystationPad::DualSense => Layout::DualSense,
            PlaystationPad::DualShock4 => Layout::DualShock4,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> anyhow::Result<Config> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn the_config_names_every_encoder_the_streamer_knows() {
        let names: Vec<&str> = EncoderPreference::ALL.iter().map(|p| p.name()).collect();
        assert_eq!(names, ENCODER_NAMES);
    }

    #[test]
    fn playstation_pads_become_a_dualsense_unless_configured() {
        use streamer::gamepad::mapping::Layout;
        assert_eq!(
            gamepads(&Config::default().input).playstation,
            Layout::DualSense
        );
        let c = parse("[input]\nplaystation_pad = \"dualshock4\"\n").unwrap();
        assert_eq!(gamepads(&c.input).playstation, Layout::DualShock4);
        let err = parse("[input]\nplaystation_pad = \"ds3\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(
            err.contains("dualsense") && err.contains("dualshock4"),
            "{err}"
        );
    }

    #[test]
    fn encoder_choice_and_vaapi_device() {
        use streamer::encode::{EncoderPreference, HardwareOptions};
        assert_eq!(
            hardware(&Config::default().video),
            HardwareOptions::default()
        );
        for p in EncoderPreference::ALL {
            let c = parse(&format!("[video]\nencoder = \"{}\"\n", p.name())).unwrap();
            assert_eq!(hardware(&c.video).preference, p);
        }
        let c = parse("[video]\nencoder = \"vaapi\"\nvaapi_device = \"/dev/dri/renderD129\"\n")
            .unwrap();
        assert_eq!(
            hardware(&c.video).vaapi_device.as_deref(),
            Some(Path::new("/dev/dri/renderD129"))
        );
    }

    #[test]
    fn the_encoder_example_in_the_docs_parses() {
        let doc = include_str!("../../docs/encoders.md");
        let blocks: Vec<&str> = doc
            .split("```toml\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        assert!(!blocks.is_empty());
        for block in blocks {
            let c = parse(block).unwrap_or_else(|e| panic!("{e:#}\n{block}"));
            assert_eq!(hardware(&c.video), hardware(&Config::default().video));
        }
    }

    #[test]
    fn renderer_and_render_node() {
        let c = Config::default();
        assert_eq!(renderer(c.video.renderer), compositor::RendererChoice::Auto);
        assert_eq!(c.video.render_node(), None);
        let c =
            parse("[video]\nrenderer = \"gles\"\nrender_node = \"/dev/dri/renderD129\"\n").unwrap();
        assert_eq!(renderer(c.video.renderer), compositor::RendererChoice::Gles);
        assert_eq!(
            c.video.render_node().as_deref(),
            Some(Path::new("/dev/dri/renderD129"))
        );
        let c = parse("[video]\nrenderer = \"pixman\"\nrender_node = \"auto\"\n").unwrap();
        assert_eq!(
            renderer(c.video.renderer),
            compositor::RendererChoice::Pixman
        );
        assert_eq!(c.video.render_node(), None);
    }

    #[test]
    fn scaling_and_scale_filter() {
        let c = parse("").unwrap();
        assert_eq!(scaling(c.video.scaling), compositor::Scaling::Fit);
        assert_eq!(
            scale_filter(c.video.scale_filter),
            compositor::ScaleFilter::Linear
        );
        let c = parse("[video]\nscaling = \"integer\"\nscale_filter = \"nearest\"\n").unwrap();
        assert_eq!(scaling(c.video.scaling), compositor::Scaling::Integer);
        assert_eq!(
            scale_filter(c.video.scale_filter),
            compositor::ScaleFilter::Nearest
        );
        let err = parse("[video]\nscaling = \"zoom\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("`fit`, `stretch`, `fill`, `integer`"), "{err}");
        let err = parse("[video]\nscale_filter = \"cubic\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`linear` or `nearest`"), "{err}");
    }
}
