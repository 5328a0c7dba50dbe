//! A client that hands the compositor dmabufs it fills from the CPU (GBM buffers on the render
//! node), so a test decides every texel of a GPU client's buffer: [`DmabufClient`]. What it
//! hears is recorded in [`Heard`], which also serves tests that speak the dmabuf protocol by
//! hand ([`connect`]).

use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;

use smithay::backend::drm::DrmDeviceFd;
use smithay::reexports::gbm::{self, BufferObjectFlags};
use smithay::utils::DeviceFd;
use wayland_client::globals::{registry_queue_init, GlobalList, GlobalListContents};
use wayland_client::protocol::{wl_buffer, wl_compositor, wl_registry, wl_surface};
use wayland_client::{delegate_noop, Connection, Dispatch, EventQueue, QueueHandle};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1, zwp_linux_dmabuf_v1,
};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};

/// The modifiers that mean a linear layout: `DRM_FORMAT_MOD_LINEAR`, and the implicit one
/// (`DRM_FORMAT_MOD_INVALID`), which a virtual GPU offers alone and which means linear there.
const LINEAR: u64 = 0;
const INVALID: u64 = 0x00ff_ffff_ffff_ffff;

/// What a plain client hears of the dmabuf and wl_drm globals, and of its window and buffers.
#[derive(Default)]
pub struct Heard {
    /// `zwp_linux_dmabuf_v1.modifier` events: (fourcc, modifier).
    pub dmabuf_formats: Vec<(u32, u64)>,
    pub created: Option<wl_buffer::WlBuffer>,
    pub failed: bool,
    /// What wl_drm said (its dispatch lives with the tests that bind it).
    pub device: Option<String>,
    pub capabilities: Option<u32>,
    pub drm_formats: Vec<u32>,
    pub authenticated: bool,
    /// Whether the window got its `xdg_surface.configure` (acked at once).
    pub configured: bool,
    /// The size in the window's last `xdg_toplevel.configure`.
    pub size: (i32, i32),
    pub released: Vec<wl_buffer::WlBuffer>,
}

/// A connection to the compositor at `socket`, its event queue and its globals.
pub fn connect(socket: &Path) -> (Connection, EventQueue<Heard>, GlobalList) {
    let stream = UnixStream::connect(socket).expect("connect to the compositor");
    let conn = Connection::from_socket(stream).expect("wayland connection");
    let (globals, queue) = registry_queue_init::<Heard>(&conn).expect("registry");
    (conn, queue, globals)
}

/// A connected client with a mapped toplevel whose buffers are linear GBM buffers on the render
/// node, filled from the CPU.
pub struct DmabufClient {
    pub drm: DrmDeviceFd,
    gbm: gbm::Device<DrmDeviceFd>,
    pub conn: Connection,
    pub queue: EventQueue<Heard>,
    pub app: Heard,
    dmabuf: zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
    pub surface: wl_surface::WlSurface,
    _toplevel: xdg_toplevel::XdgToplevel,
    pub compositor: wl_compositor::WlCompositor,
    pub globals: GlobalList,
    /// The window's size: the first configure's, or `fallback` where the compositor leaves it
    /// to the client.
    pub size: (u32, u32),
}

impl DmabufClient {
    /// Connects to the compositor at `socket` and maps a toplevel titled `title`, opening
    /// `render_node` for its buffers.
    pub fn connect(socket: &Path, render_node: &Path, title: &str, fallback: (u32, u32)) -> Self {
        let node = std::fs::File::options()
            .read(true)
            .write(true)
            .open(render_node)
            .unwrap_or_else(|err| panic!("opening {}: {err}", render_node.display()));
        let drm = DrmDeviceFd::new(DeviceFd::from(std::os::fd::OwnedFd::from(node)));
        let gbm = gbm::Device::new(drm.clone()).expect("GBM on the render node");
        let (conn, mut queue, globals) = connect(socket);
        let qh = queue.handle();
        let mut app = Heard::default();
        let compositor: wl_compositor::WlCompositor = globals.bind(&qh, 4..=6, ()).unwrap();
        let wm: xdg_wm_base::XdgWmBase = globals.bind(&qh, 1..=1, ()).unwrap();
        // Its formats come with the first dispatch.
        let dmabuf = globals.bind(&qh, 3..=3, ()).unwrap();
        let surface = compositor.create_surface(&qh, ());
        let xdg = wm.get_xdg_surface(&surface, &qh, ());
        let toplevel = xdg.get_toplevel(&qh, ());
        toplevel.set_title(title.into());
        surface.commit();
        queue.roundtrip(&mut app).unwrap();
        while !app.configured {
            queue.blocking_dispatch(&mut app).unwrap();
        }
        let size = match app.size {
            (w, h) if w > 0 && h > 0 => (w as u32, h as u32),
            _ => fallback,
        };
        Self {
            drm,
            gbm,
            conn,
            queue,
            app,
            dmabuf,
            surface,
            _toplevel: toplevel,
            compositor,
            globals,
            size,
        }
    }

    /// The modifier the compositor offers for a linear `fourcc` buffer.
    fn linear_modifier(&self, fourcc: u32) -> u64 {
        let offered: Vec<u64> = self
            .app
            .dmabuf_formats
            .iter()
            .filter(|(f, _)| *f == fourcc)
            .map(|(_, m)| *m)
            .collect();
        *[LINEAR, INVALID]
            .iter()
            .find(|m| offered.contains(m))
            .unwrap_or_else(|| {
                let name = String::from_utf8_lossy(&fourcc.to_le_bytes()).into_owned();
                panic!("no linear {name} offered: {offered:x?}")
            })
    }

    /// A window-sized linear GBM buffer in `fourcc` (a DRM format of 32 bits a texel), each
    /// texel `texel(x, y)` as the format packs it, and its `wl_buffer` (not Y-inverted).
    pub fn buffer(
        &self,
        fourcc: u32,
        texel: impl Fn(u32, u32) -> u32,
    ) -> (gbm::BufferObject<()>, wl_buffer::WlBuffer) {
        let (w, h) = self.size;
        let format = gbm::Format::try_from(fourcc).expect("a DRM format");
        let modifier = self.linear_modifier(fourcc);
        let mut bo = self
            .gbm
            .create_buffer_object::<()>(
                w,
                h,
                format,
                BufferObjectFlags::LINEAR | BufferObjectFlags::RENDERING,
            )
            .unwrap_or_else(|err| panic!("a linear {format:?} GBM buffer: {err}"));
        bo.map_mut(0, 0, w, h, |mapped| {
            let stride = mapped.stride() as usize;
            for (y, row) in mapped
                .buffer_mut()
                .chunks_mut(stride)
                .take(h as usize)
                .enumerate()
            {
                for (x, px) in row[..w as usize * 4].chunks_mut(4).enumerate() {
                    px.copy_from_slice(&texel(x as u32, y as u32).to_le_bytes());
                }
            }
        })
        .expect("mapping the GBM buffer");
        let fd = bo.fd().expect("the GBM buffer's dmabuf");
        let qh = self.queue.handle();
        let params = self.dmabuf.create_params(&qh, ());
        params.add(
            fd.as_fd(),
            0,
            bo.offset(0),
            bo.stride(),
            (modifier >> 32) as u32,
            modifier as u32,
        );
        let buffer = params.create_immed(
            w as i32,
            h as i32,
            fourcc,
            zwp_linux_buffer_params_v1::Flags::empty(),
            &qh,
            (),
        );
        (bo, buffer)
    }

    /// Attaches `buffer`, damages all of it and commits.
    pub fn show(&self, buffer: &wl_buffer::WlBuffer) {
        self.surface.attach(Some(buffer), 0, 0);
        self.surface.damage_buffer(0, 0, i32::MAX, i32::MAX);
        self.surface.commit();
        self.conn.flush().unwrap();
    }

    pub fn roundtrip(&mut self) {
        self.queue.roundtrip(&mut self.app).unwrap();
    }
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for Heard {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

impl Dispatch<zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1, ()> for Heard {
    fn event(
        state: &mut Self,
        _: &zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
        event: zwp_linux_dmabuf_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let zwp_linux_dmabuf_v1::Event::Modifier {
            format,
            modifier_hi,
            modifier_lo,
        } = event
        {
            let modifier = (u64::from(modifier_hi) << 32) | u64::from(modifier_lo);
            state.dmabuf_formats.push((format, modifier));
        }
    }
}

impl Dispatch<zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1, ()> for Heard {
    fn event(
        state: &mut Self,
        _: &zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1,
        event: zwp_linux_buffer_params_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            zwp_linux_buffer_params_v1::Event::Created { buffer } => state.created = Some(buffer),
            zwp_linux_buffer_params_v1::Event::Failed => state.failed = true,
            _ => {}
        }
    }

    wayland_client::event_created_child!(Heard, zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1, [
        zwp_linux_buffer_params_v1::EVT_CREATED_OPCODE => (wl_buffer::WlBuffer, ()),
    ]);
}

impl Dispatch<wl_buffer::WlBuffer, ()> for Heard {
    fn event(
        state: &mut Self,
        buffer: &wl_buffer::WlBuffer,
        event: wl_buffer::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            state.released.push(buffer.clone());
        }
    }
}

// The window's own handlers, not `super::wl::App`'s: that one draws `wl_shm` buffers on every
// configure, over the dmabufs the tests check.
impl Dispatch<xdg_wm_base::XdgWmBase, ()> for Heard {
    fn event(
        _: &mut Self,
        base: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            base.pong(serial);
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, ()> for Heard {
    fn event(
        state: &mut Self,
        surface: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            surface.ack_configure(serial);
            state.configured = true;
        }
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, ()> for Heard {
    fn event(
        state: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_toplevel::Event::Configure { width, height, .. } = event {
            state.size = (width, height);
        }
    }
}

delegate_noop!(Heard: wl_compositor::WlCompositor);
delegate_noop!(Heard: ignore wl_surface::WlSurface);
