//! wl_drm: the older way Mesa's EGL and Xwayland learn the GPU's device node and share
//! buffers. Debian 12's Xwayland turns glamor (and with it DRI3, which GPU-rendered X11 games
//! and Steam need) on only when the compositor offers it. Buffers come as PRIME file
//! descriptors (`create_prime_buffer`) and are imported like any client dmabuf; the flink
//! names of `create_buffer` and `create_planar_buffer` are refused. Offered with the dmabuf
//! global, never without a GPU (see [`State::offer_gpu_buffers`]).

use std::io::{Seek, SeekFrom};
use std::os::unix::io::OwnedFd;
use std::path::PathBuf;

use smithay::backend::allocator::dmabuf::{Dmabuf, DmabufFlags};
use smithay::backend::allocator::{Fourcc, Modifier};
use smithay::reexports::wayland_server::backend::GlobalId;
use smithay::reexports::wayland_server::{
    Client, DataInit, Dispatch, DisplayHandle, GlobalDispatch, New, Resource,
};

use crate::state::State;

/// The protocol, generated from `compositor/protocols/wayland-drm.xml`.
#[allow(
    missing_docs,
    unused_qualifications,
    non_upper_case_globals,
    clippy::all
)]
pub(crate) mod protocol {
    use smithay::reexports::wayland_server;
    use smithay::reexports::wayland_server::protocol::*;

    pub(crate) mod __interfaces {
        use smithay::reexports::wayland_server::backend as wayland_backend;
        use smithay::reexports::wayland_server::protocol::__interfaces::*;
        wayland_scanner::generate_interfaces!("protocols/wayland-drm.xml");
    }
    use self::__interfaces::*;

    wayland_scanner::generate_server_code!("protocols/wayland-drm.xml");
}

use self::protocol::wl_drm::{self, WlDrm};

/// What every bound wl_drm is told: the device node and the formats.
#[derive(Debug, Clone)]
pub(crate) struct WlDrmGlobal {
    node: PathBuf,
    formats: Vec<Fourcc>,
}

/// Creates the wl_drm global for the render node `node` and the dmabuf formats the renderer
/// imports.
pub(crate) fn create_global(
    dh: &DisplayHandle,
    node: PathBuf,
    formats: impl IntoIterator<Item = Fourcc>,
) -> GlobalId {
    let mut formats: Vec<Fourcc> = formats.into_iter().collect();
    formats.sort_by_key(|f| *f as u32);
    formats.dedup();
    dh.create_global::<State, WlDrm, _>(2, WlDrmGlobal { node, formats })
}

impl GlobalDispatch<WlDrm, WlDrmGlobal> for State {
    fn bind(
        _state: &mut Self,
        _dh: &DisplayHandle,
        _client: &Client,
        resource: New<WlDrm>,
        global: &WlDrmGlobal,
        data_init: &mut DataInit<'_, Self>,
    ) {
        let drm = data_init.init(resource, ());
        drm.device(global.node.to_string_lossy().into_owned());
        if drm.version() >= 2 {
            drm.capabilities(wl_drm::Capability::Prime as u32);
        }
        for format in &global.formats {
            drm.format(*format as u32);
        }
    }
}

impl Dispatch<WlDrm, ()> for State {
    fn request(
        state: &mut Self,
        _client: &Client,
        drm: &WlDrm,
        request: wl_drm::Request,
        _data: &(),
        _dh: &DisplayHandle,
        data_init: &mut DataInit<'_, Self>,
    ) {
        // An error is posted on the wl_drm object: that ends the client at once, so the new
        // buffer object it asked for is never made.
        match request {
            // A render node needs no DRM authentication.
            wl_drm::Request::Authenticate { .. } => drm.authenticated(),
            wl_drm::Request::CreateBuffer { .. } | wl_drm::Request::CreatePlanarBuffer { .. } => {
                drm.post_error(
                    wl_drm::Error::InvalidName,
                    "flink names are not supported; use create_prime_buffer",
                );
            }
            wl_drm::Request::CreatePrimeBuffer {
                id,
                name,
                width,
                height,
                format,
                offset0,
                stride0,
                ..
            } => match prime_dmabuf(name, width, height, format, offset0, stride0) {
                Err((code, message)) => drm.post_error(code, message),
                Ok(dmabuf) => match state.import_client_dmabuf(&dmabuf) {
                    Ok(()) => {
                        data_init.init(id, dmabuf);
                    }
                    Err(err) => drm.post_error(
                        wl_drm::Error::InvalidName,
                        format!("the GPU cannot import this buffer: {err}"),
                    ),
                },
            },
        }
    }
}

/// The dmabuf a single-plane `create_prime_buffer` describes (the RGB formats Xwayland and
/// Mesa send this way), or the protocol error for one that cannot be.
fn prime_dmabuf(
    fd: OwnedFd,
    width: i32,
    height: i32,
    format: u32,
    offset: i32,
    stride: i32,
) -> Result<Dmabuf, (wl_drm::Error, String)> {
    let fourcc = Fourcc::try_from(format).map_err(|_| {
        (
            wl_drm::Error::InvalidFormat,
            format!("unknown format {format:#x}"),
        )
    })?;
    if width <= 0 || height <= 0 || offset < 0 || stride <= 0 {
        return Err((
            wl_drm::Error::InvalidName,
            format!("invalid buffer {width}x{height}, offset {offset}, stride {stride}"),
        ));
    }
    // The picture must lie inside the buffer, as zwp_linux_dmabuf_v1 checks it too.
    let end = u64::from(stride as u32)
        .checked_mul(u64::from(height as u32))
        .and_then(|bytes| bytes.checked_add(u64::from(offset as u32)));
    let size = fd
        .try_clone()
        .map(std::fs::File::from)
        .and_then(|mut file| {
            let size = file.seek(SeekFrom::End(0))?;
            // The descriptor's position is shared with the client: put it back.
            file.seek(SeekFrom::Start(0))?;
            Ok(size)
        });
    match (end, size) {
        (Some(end), Ok(size)) if end <= size => {}
        (_, Err(err)) => {
            return Err((
                wl_drm::Error::InvalidName,
                format!("the buffer's size: {err}"),
            ));
        }
        _ => {
            return Err((
                wl_drm::Error::InvalidName,
                format!("{height} rows of {stride} bytes from {offset} do not fit the buffer"),
            ));
        }
    }
    let mut builder = Dmabuf::builder(
        (width, height),
        fourcc,
        Modifier::Invalid,
        DmabufFlags::empty(),
    );
    builder.add_plane(fd, 0, offset as u32, stride as u32);
    builder.build().ok_or_else(|| {
        (
            wl_drm::Error::InvalidName,
            "a buffer without a plane".into(),
        )
    })
}
