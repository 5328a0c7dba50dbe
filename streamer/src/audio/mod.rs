//! Sound from the session's apps: a virtual sink per session and the capture of its monitor.
//!
//! Everything here speaks the PulseAudio protocol through libpulse, so it works the same with
//! PulseAudio and with PipeWire's `pipewire-pulse`:
//!
//! - [`PulseServer`] is the address of a sound server; [`PulseServer::probe`] checks that one
//!   answers;
//! - [`VirtualSink`] is a null sink (`module-null-sink`) made for one session, in the client's
//!   speaker layout. The session's apps play into it (see [`VirtualSink::app_env`]); dropping it
//!   unloads it;
//! - [`Capture`] records a sink's monitor at 48 kHz in a given [`ChannelLayout`], one packet of
//!   PCM at a time. The audio thread paces its packets by these reads: a null sink renders on
//!   the server's clock and its monitor yields silence while nothing plays, so packets keep
//!   flowing at the audio rate.
//!
//! Starting a private server when none runs is the binary's business (it supervises processes);
//! this module only connects to one.

mod capture;
mod sink;

pub use capture::Capture;
pub use sink::{remove_orphaned_sinks, PulseServer, ServerInfo, VirtualSink};

use crate::encode::ChannelLayout;

/// Where a stream records its sound: a source (a sink's monitor) on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSource {
    /// The sound server.
    pub server: PulseServer,
    /// The source to record, `<sink>.monitor`.
    pub source: String,
}

/// The PulseAudio channel map of a GameStream speaker layout, in GameStream's channel order
/// (FL FR FC LFE BL BR SL SR; PulseAudio calls the back speakers "rear").
pub fn channel_map(layout: ChannelLayout) -> &'static str {
    match layout {
        ChannelLayout::Stereo => "front-left,front-right",
        ChannelLayout::Surround51 => "front-left,front-right,front-center,lfe,rear-left,rear-right",
        ChannelLayout::Surround71 => {
            "front-left,front-right,front-center,lfe,rear-left,rear-right,side-left,side-right"
        }
    }
}

/// The layout for a channel count as clients announce it (`surroundAudioInfo`,
/// `x-nv-audio.surround.numChannels`): 6 is 5.1, 8 is 7.1, anything else stereo.
pub fn layout_for_channels(channels: u32) -> ChannelLayout {
    match channels {
        6 => ChannelLayout::Surround51,
        8 => ChannelLayout::Surround71,
        _ => ChannelLayout::Stereo,
    }
}
