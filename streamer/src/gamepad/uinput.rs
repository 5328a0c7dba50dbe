//! Virtual input devices through `/dev/uinput` (raw ioctls, `linux/uinput.h`).
//!
//! A device that supports `FF_RUMBLE` gets a thread that answers the kernel's effect uploads and
//! erasures and turns playing an effect into a rumble message for the client, with a stop
//! message when the effect's duration runs out or the game stops it.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::control::HostMessage;
use tracing::{debug, trace};

use super::mapping::{DeviceSpec, EvdevEvent, EV_ABS, EV_FF, EV_KEY};
use super::{DeviceBackend, FeedbackSink, VirtualDevice};

/// Where the uinput device node lives.
pub const UINPUT_PATH: &str = "/dev/uinput";

const BUS_USB: u16 = 0x03;
const FF_RUMBLE: u16 = 0x50;
const FF_MAX_EFFECTS: u32 = 16;
const EV_UINPUT: u16 = 0x0101;
const UI_FF_UPLOAD: u16 = 1;
const UI_FF_ERASE: u16 = 2;

// ioctl numbers: _IO/_IOW/_IOWR('U', nr, size) for x86_64/aarch64 (generic ioctl layout).
const fn ioc(dir: u64, nr: u64, size: u64) -> u64 {
    (dir << 30) | (size << 16) | ((b'U' as u64) << 8) | nr
}
const IOC_NONE: u64 = 0;
const IOC_WRITE: u64 = 1;
const IOC_READ_WRITE: u64 = 3;
const UI_DEV_CREATE: u64 = ioc(IOC_NONE, 1, 0);
const UI_DEV_DESTROY: u64 = ioc(IOC_NONE, 2, 0);
const UI_DEV_SETUP: u64 = ioc(IOC_WRITE, 3, size_of::<UinputSetup>() as u64);
const UI_ABS_SETUP: u64 = ioc(IOC_WRITE, 4, size_of::<UinputAbsSetup>() as u64);
const UI_SET_EVBIT: u64 = ioc(IOC_WRITE, 100, 4);
const UI_SET_KEYBIT: u64 = ioc(IOC_WRITE, 101, 4);
const UI_SET_ABSBIT: u64 = ioc(IOC_WRITE, 103, 4);
const UI_SET_FFBIT: u64 = ioc(IOC_WRITE, 107, 4);
const UI_SET_PROPBIT: u64 = ioc(IOC_WRITE, 110, 4);
const UI_BEGIN_FF_UPLOAD: u64 = ioc(IOC_READ_WRITE, 200, size_of::<UinputFfUpload>() as u64);
const UI_END_FF_UPLOAD: u64 = ioc(IOC_WRITE, 201, size_of::<UinputFfUpload>() as u64);
const UI_BEGIN_FF_ERASE: u64 = ioc(IOC_READ_WRITE, 202, size_of::<UinputFfErase>() as u64);
const UI_END_FF_ERASE: u64 = ioc(IOC_WRITE, 203, size_of::<UinputFfErase>() as u64);

#[repr(C)]
struct InputId {
    bustype: u16,
    vendor: u16,
    product: u16,
    version: u16,
}

#[repr(C)]
struct UinputSetup {
    id: InputId,
    name: [u8; 80],
    ff_effects_max: u32,
}

#[repr(C)]
#[derive(Default)]
struct InputAbsinfo {
    value: i32,
    minimum: i32,
    maximum: i32,
    fuzz: i32,
    flat: i32,
    resolution: i32,
}

#[repr(C)]
struct UinputAbsSetup {
    code: u16,
    absinfo: InputAbsinfo,
}

/// `struct ff_effect`: 16 bytes of header, then a union whose largest member (the periodic
/// effect, with a pointer) makes it 32 bytes, 8-aligned. Only the rumble view is read.
#[repr(C)]
#[derive(Clone, Copy)]
struct FfEffect {
    kind: u16,
    id: i16,
    direction: u16,
    trigger_button: u16,
    trigger_interval: u16,
    replay_length: u16,
    replay_delay: u16,
    _pad: u16,
    /// `ff_rumble_effect`: strong, weak magnitude; the rest of the union.
    union: [u64; 4],
}

#[repr(C)]
struct UinputFfUpload {
    request_id: u32,
    retval: i32,
    effect: FfEffect,
    old: FfEffect,
}

#[repr(C)]
struct UinputFfErase {
    request_id: u32,
    retval: i32,
    effect_id: u32,
}

/// `struct input_event` on 64-bit: a timeval, then type, code, value.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct InputEvent {
    sec: i64,
    usec: i64,
    kind: u16,
    code: u16,
    value: i32,
}

const _: () = assert!(size_of::<FfEffect>() == 48);
const _: () = assert!(size_of::<UinputSetup>() == 92);
const _: () = assert!(size_of::<UinputAbsSetup>() == 28);
const _: () = assert!(size_of::<InputEvent>() == 24);

/// Creates devices through `/dev/uinput`.
#[derive(Debug, Default)]
pub struct UinputBackend;

impl DeviceBackend for UinputBackend {
    fn create(
        &mut self,
        spec: &DeviceSpec,
        controller: u16,
        feedback: FeedbackSink,
    ) -> anyhow::Result<Box<dyn VirtualDevice>> {
        Ok(Box::new(UinputDevice::create(spec, controller, feedback)?))
    }
}

/// Whether this host can create uinput devices at all.
pub fn available() -> bool {
    OpenOptions::new().write(true).open(UINPUT_PATH).is_ok()
}

/// One uinput device.
pub struct UinputDevice {
    file: Arc<File>,
    stop: Arc<AtomicBool>,
    rumble_thread: Option<JoinHandle<()>>,
}

impl UinputDevice {
    /// Creates the device `spec` describes.
    pub fn create(
        spec: &DeviceSpec,
        controller: u16,
        feedback: FeedbackSink,
    ) -> anyhow::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(UINPUT_PATH)
            .with_context(|| format!("cannot open {UINPUT_PATH}"))?;
        let fd = file.as_raw_fd();
        let set = |req: u64, v: u16| -> io::Result<()> { ioctl_int(fd, req, i32::from(v)) };
        let setup = || -> io::Result<()> {
            if !spec.keys.is_empty() {
                set(UI_SET_EVBIT, EV_KEY)?;
                for &k in &spec.keys {
                    set(UI_SET_KEYBIT, k)?;
                }
            }
            if !spec.axes.is_empty() {
                set(UI_SET_EVBIT, EV_ABS)?;
                for a in &spec.axes {
                    set(UI_SET_ABSBIT, a.code)?;
                    let abs = UinputAbsSetup {
                        code: a.code,
                        absinfo: InputAbsinfo {
                            value: 0,
                            minimum: a.min,
                            maximum: a.max,
                            fuzz: a.fuzz,
                            flat: a.flat,
                            resolution: a.resolution,
                        },
                    };
                    ioctl_ptr(fd, UI_ABS_SETUP, &abs)?;
                }
            }
            for &p in &spec.props {
                set(UI_SET_PROPBIT, p)?;
            }
            if spec.rumble {
                set(UI_SET_EVBIT, EV_FF)?;
                set(UI_SET_FFBIT, FF_RUMBLE)?;
            }
            let mut name = [0u8; 80];
            let n = spec.name.len().min(79);
            name[..n].copy_from_slice(&spec.name.as_bytes()[..n]);
            let setup = UinputSetup {
                id: InputId {
                    bustype: BUS_USB,
                    vendor: spec.vendor,
                    product: spec.product,
                    version: spec.version,
                },
                name,
                ff_effects_max: if spec.rumble { FF_MAX_EFFECTS } else { 0 },
            };
            ioctl_ptr(fd, UI_DEV_SETUP, &setup)?;
            ioctl_int(fd, UI_DEV_CREATE, 0)
        };
        setup().with_context(|| format!("cannot create the uinput device {:?}", spec.name))?;
        debug!(name = %spec.name, controller, "uinput device created");
        let file = Arc::new(file);
        let stop = Arc::new(AtomicBool::new(false));
        let rumble_thread = if spec.rumble {
            let (file, stop) = (file.clone(), stop.clone());
            Some(
                std::thread::Builder::new()
                    .name(format!("rumble-{controller}"))
                    .spawn(move || rumble_loop(&file, &stop, controller, &feedback))
                    .context("cannot start the rumble thread")?,
            )
        } else {
            None
        };
        Ok(Self {
            file,
            stop,
            rumble_thread,
        })
    }
}

impl VirtualDevice for UinputDevice {
    fn emit(&mut self, events: &[EvdevEvent]) -> io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 24);
        for e in events {
            let ev = InputEvent {
                kind: e.kind,
                code: e.code,
                value: e.value,
                ..Default::default()
            };
            // SAFETY: InputEvent is repr(C) plain data without padding (24 bytes, asserted).
            let bytes =
                unsafe { std::slice::from_raw_parts((&ev as *const InputEvent).cast::<u8>(), 24) };
            buf.extend_from_slice(bytes);
        }
        (&*self.file).write_all(&buf)
    }
}

impl Drop for UinputDevice {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.rumble_thread.take() {
            let _ = t.join();
        }
        let _ = ioctl_int(self.file.as_raw_fd(), UI_DEV_DESTROY, 0);
    }
}

/// Answers FF uploads/erasures and turns effect playback into rumble messages until `stop`.
fn rumble_loop(file: &File, stop: &AtomicBool, controller: u16, feedback: &FeedbackSink) {
    let fd = file.as_raw_fd();
    // effect id -> (strong, weak, duration)
    let mut effects: HashMap<i16, (u16, u16, Duration)> = HashMap::new();
    let mut playing: Option<(i16, Option<Instant>)> = None;
    let send = |low: u16, high: u16| {
        feedback(HostMessage::Rumble {
            controller,
            low_freq: low,
            high_freq: high,
        })
    };
    let mut buf = [0u8; 24 * 16];
    while !stop.load(Ordering::Relaxed) {
        let mut timeout = 50;
        if let Some((_, Some(end))) = playing {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                send(0, 0);
                playing = None;
            } else {
                timeout = timeout.min(left.as_millis() as i32 + 1);
            }
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if r <= 0 {
            continue;
        }
        let n = match (&*file).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                debug!(%e, "uinput read failed; rumble stops");
                return;
            }
        };
        for chunk in buf[..n].chunks_exact(24) {
            let kind = u16::from_ne_bytes([chunk[16], chunk[17]]);
            let code = u16::from_ne_bytes([chunk[18], chunk[19]]);
            let value = i32::from_ne_bytes([chunk[20], chunk[21], chunk[22], chunk[23]]);
            match (kind, code) {
                (EV_UINPUT, UI_FF_UPLOAD) => {
                    // SAFETY: all-zero is a valid UinputFfUpload.
                    let mut up: UinputFfUpload = unsafe { std::mem::zeroed() };
                    up.request_id = value as u32;
                    if ioctl_ptr_mut(fd, UI_BEGIN_FF_UPLOAD, &mut up).is_err() {
                        continue;
                    }
                    let e = up.effect;
                    if e.kind == FF_RUMBLE {
                        let strong = (e.union[0] & 0xFFFF) as u16;
                        let weak = ((e.union[0] >> 16) & 0xFFFF) as u16;
                        effects.insert(
                            e.id,
                            (
                                strong,
                                weak,
                                Duration::from_millis(u64::from(e.replay_length)),
                            ),
                        );
                        up.retval = 0;
                    } else {
                        up.retval = -libc::EINVAL;
                    }
                    let _ = ioctl_ptr_mut(fd, UI_END_FF_UPLOAD, &mut up);
                }
                (EV_UINPUT, UI_FF_ERASE) => {
                    let mut er = UinputFfErase {
                        request_id: value as u32,
                        retval: 0,
                        effect_id: 0,
                    };
                    if ioctl_ptr_mut(fd, UI_BEGIN_FF_ERASE, &mut er).is_err() {
                        continue;
                    }
                    let id = er.effect_id as i16;
                    effects.remove(&id);
                    if playing.is_some_and(|(p, _)| p == id) {
                        send(0, 0);
                        playing = None;
                    }
                    er.retval = 0;
                    let _ = ioctl_ptr_mut(fd, UI_END_FF_ERASE, &mut er);
                }
                (EV_FF, id) => {
                    let id = id as i16;
                    if value > 0 {
                        if let Some(&(strong, weak, length)) = effects.get(&id) {
                            trace!(controller, strong, weak, ?length, "rumble");
                            send(strong, weak);
                            let end =
                                (!length.is_zero()).then(|| Instant::now() + length * value as u32);
                            playing = Some((id, end));
                        }
                    } else if playing.is_some_and(|(p, _)| p == id) {
                        send(0, 0);
                        playing = None;
                    }
                }
                _ => {}
            }
        }
    }
    if playing.is_some() {
        send(0, 0);
    }
}

fn ioctl_int(fd: i32, req: u64, v: i32) -> io::Result<()> {
    // SAFETY: these requests take an int argument by value.
    let r = unsafe { libc::ioctl(fd, req as _, v) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ioctl_ptr<T>(fd: i32, req: u64, arg: &T) -> io::Result<()> {
    // SAFETY: `req` is the request whose argument type is T (sizes encoded in the request).
    let r = unsafe { libc::ioctl(fd, req as _, arg as *const T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn ioctl_ptr_mut<T>(fd: i32, req: u64, arg: &mut T) -> io::Result<()> {
    // SAFETY: as for `ioctl_ptr`; the kernel writes back into `arg`.
    let r = unsafe { libc::ioctl(fd, req as _, arg as *mut T) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
