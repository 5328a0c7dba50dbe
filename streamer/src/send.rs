//! Sending a video frame: its datagrams in batches (one system call for up to 64 of them), and
//! paced, so that a large frame does not leave as one burst.
//!
//! [`Pacing`] is the schedule, a pure function of the frame's size, the stream's bitrate and the
//! frame interval:
//!
//! - a frame's first [`Pacing::burst_bytes`] (twice an average frame at the stream's bitrate, at
//!   least [`MIN_BURST_BYTES`]) leave at once, so a normal frame gets no added latency;
//! - the rest leave batch by batch at [`PACE_FACTOR`] times the stream's bitrate, or faster
//!   where that is needed for the last batch to leave within [`MAX_SPREAD_PERCENT`] of the frame
//!   interval. A large frame (an IDR at a high bitrate) is thus spread over part of the frame
//!   interval and never runs into the next frame.
//!
//! [`VideoSender`] carries it out on a socket, one `sendmmsg` per batch. Every datagram of a
//! frame has the same length, so a batch could also go out as one `sendmsg` with UDP
//! segmentation offload (`UDP_SEGMENT`), with `sendmmsg` as the fallback where the kernel refuses
//! it ([`VideoSender::with_segmentation`]). The stream does not use that: until the device or the
//! NIC cuts it, the batch is one packet, and anything that drops packets before that point (a
//! full queue, a qdisc, a firewall rule; the loss tests' nftables rule) drops all of its
//! datagrams at once. In the 5 % loss test, with segmentation each drop took a whole
//! frame and 90 % of the frames decoded; with `sendmmsg` 99 % did.
//!
//! [`SenderThread`] runs that on a thread of its own, so the encoder starts on the next frame
//! while a large one is still leaving.
//!
//! The reference host paces at a fixed rate instead (80 % of 1 Gb/s for every stream); a rate
//! derived from the stream's bitrate spreads a large frame further on a slow stream and keeps a
//! fast one from being held back.

use std::io;
use std::mem;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{Scope, ScopedJoinHandle};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use protocol::video::VideoDatagrams;
use tracing::{debug, trace};

/// Most datagrams in one batch: the kernel's limit for one segmented send
/// (`UDP_MAX_SEGMENTS`); `sendmmsg` batches use the same size.
pub const MAX_BATCH_DATAGRAMS: usize = 64;

/// Most bytes in one batch: a segmented send must fit one 64 KiB IP packet.
pub const MAX_BATCH_BYTES: usize = 65_000;

/// A frame this large or smaller always leaves at once.
pub const MIN_BURST_BYTES: usize = 64 * 1024;

/// How much faster than the stream's bitrate the paced part of a frame leaves.
pub const PACE_FACTOR: u64 = 8;

/// The last batch of a frame leaves within this share of the frame interval.
pub const MAX_SPREAD_PERCENT: u32 = 50;

/// The pacing of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// What the stream sends on average, in bits per second, parity included.
    pub bitrate_bps: u64,
    /// Time between two frames.
    pub frame_interval: Duration,
}

/// One batch of a frame: datagrams `start..end`, due `at` after the frame's first batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    /// When the batch is due, from the start of the frame.
    pub at: Duration,
    /// Index of its first datagram.
    pub start: usize,
    /// Index after its last datagram.
    pub end: usize,
}

impl Pacing {
    /// What leaves at once: twice the average frame, at least [`MIN_BURST_BYTES`].
    pub fn burst_bytes(&self) -> usize {
        let avg = self.bitrate_bps as f64 / 8.0 * self.frame_interval.as_secs_f64();
        ((2.0 * avg) as usize).max(MIN_BURST_BYTES)
    }

    /// Datagrams per batch for datagrams of `len` bytes.
    pub fn batch_len(len: usize) -> usize {
        (MAX_BATCH_BYTES / len.max(1)).clamp(1, MAX_BATCH_DATAGRAMS)
    }

    /// The batches of a frame of `count` datagrams of `len` bytes, in sending order.
    pub fn schedule(&self, count: usize, len: usize) -> impl Iterator<Item = Batch> {
        let per_batch = Self::batch_len(len);
        let burst = self.burst_bytes() as f64;
        let total = (count * len) as f64;
        // Bytes per second for what goes beyond the burst: a multiple of the stream's rate, or
        // whatever finishes the frame within its share of the interval.
        let spread = self.frame_interval.as_secs_f64() * f64::from(MAX_SPREAD_PERCENT) / 100.0;
        let by_rate = self.bitrate_bps.saturating_mul(PACE_FACTOR) as f64 / 8.0;
        let by_deadline = if spread > 0.0 {
            (total - burst).max(0.0) / spread
        } else {
            f64::INFINITY
        };
        let rate = by_rate.max(by_deadline).max(1.0);
        (0..count.div_ceil(per_batch)).map(move |b| {
            let start = b * per_batch;
            let before = (start * len) as f64;
            let at = ((before - burst).max(0.0) / rate).min(spread);
            Batch {
                at: Duration::from_secs_f64(at),
                start,
                end: (start + per_batch).min(count),
            }
        })
    }

    /// When the last batch of a frame of `count` datagrams of `len` bytes is due.
    pub fn duration(&self, count: usize, len: usize) -> Duration {
        self.schedule(count, len)
            .last()
            .map_or(Duration::ZERO, |b| b.at)
    }
}

/// What one [`VideoSender::send`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendReport {
    /// Datagrams the kernel took.
    pub sent: usize,
    /// Datagrams that failed (they are dropped, as on a lossy link).
    pub failed: usize,
    /// Batches, i.e. system calls when nothing was split.
    pub batches: usize,
    /// Whether segmentation offload carried the batches.
    pub segmented: bool,
}

/// Whether this socket takes `UDP_SEGMENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segmentation {
    Untried,
    Works,
    Refused,
}

/// Sends frames on one socket, remembering whether its kernel takes segmentation offload.
#[derive(Debug)]
pub struct VideoSender {
    segmentation: Segmentation,
}

impl Default for VideoSender {
    fn default() -> Self {
        Self::new()
    }
}

impl VideoSender {
    /// A sender that sends each batch with one `sendmmsg`: every datagram is a packet of its
    /// own from the socket on, so whatever drops packets on the way (a full queue, a qdisc, a
    /// firewall rule) drops them one by one, as FEC expects.
    pub fn new() -> VideoSender {
        VideoSender {
            segmentation: Segmentation::Refused,
        }
    }

    /// A sender that tries UDP segmentation offload first, falling back to `sendmmsg` where the
    /// kernel refuses it. Cheaper on the CPU, but a batch stays one packet up to the device (or
    /// the NIC) that cuts it, so a drop before that point loses the whole batch, which FEC
    /// cannot repair; the stream therefore uses [`VideoSender::new`].
    pub fn with_segmentation() -> VideoSender {
        VideoSender {
            segmentation: Segmentation::Untried,
        }
    }

    /// Sends the datagrams in `bytes` (back to back, `len` bytes each) to `dest` on `pacing`'s
    /// schedule, starting now; returns once the last one is with the kernel. A batch the kernel
    /// refuses is dropped and the rest goes on, as with any lost packet.
    pub fn send(
        &mut self,
        socket: &UdpSocket,
        dest: SocketAddr,
        bytes: &[u8],
        len: usize,
        pacing: &Pacing,
    ) -> SendReport {
        let mut report = SendReport::default();
        if len == 0 || bytes.is_empty() {
            return report;
        }
        let count = bytes.len() / len;
        let start = Instant::now();
        let addr = SockAddr::from(dest);
        for batch in pacing.schedule(count, len) {
            let due = start + batch.at;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            let data = &bytes[batch.start * len..batch.end * len];
            let n = batch.end - batch.start;
            report.batches += 1;
            let result = self.send_batch(socket, &addr, data, len);
            match result {
                Ok(()) => report.sent += n,
                Err(e) => {
                    trace!(%e, datagrams = n, "video send failed");
                    report.failed += n;
                }
            }
        }
        report.segmented = self.segmentation == Segmentation::Works;
        report
    }

    fn send_batch(
        &mut self,
        socket: &UdpSocket,
        addr: &SockAddr,
        data: &[u8],
        len: usize,
    ) -> io::Result<()> {
        let n = data.len() / len;
        if n > 1 && self.segmentation != Segmentation::Refused {
            match send_segmented(socket, addr, data, len) {
                Ok(()) => {
                    self.segmentation = Segmentation::Works;
                    return Ok(());
                }
                // The batch goes again with sendmmsg, and so do all later ones (a route
                // through a device without checksum offload refuses segmentation for good).
                Err(e) if refuses_segmentation(&e) => {
                    debug!(%e, "UDP segmentation refused; sending batches with sendmmsg");
                    self.segmentation = Segmentation::Refused;
                }
                Err(e) => return Err(e),
            }
        }
        send_many(socket, addr, data, len)
    }
}

/// Frames handed to the [`SenderThread`] that may wait behind the one it is sending. A second
/// one would only add a frame of latency: the video thread waits instead, and the frames it
/// skips meanwhile are never encoded, so frame numbers still do not skip.
const SENDER_QUEUE: usize = 1;

/// A frame's datagrams, back to back and all of one length, in a buffer the sender thread hands
/// back for the next frame: GameStream's RTP datagrams, punktfunk/1's sealed shards.
pub trait FrameDatagrams: Default + Send {
    /// All datagrams concatenated.
    fn as_bytes(&self) -> &[u8];
    /// Length of every datagram.
    fn datagram_len(&self) -> usize;
    /// Number of datagrams.
    fn count(&self) -> usize {
        self.as_bytes().len() / self.datagram_len().max(1)
    }
}

impl FrameDatagrams for VideoDatagrams {
    fn as_bytes(&self) -> &[u8] {
        VideoDatagrams::as_bytes(self)
    }

    fn datagram_len(&self) -> usize {
        VideoDatagrams::datagram_len(self)
    }
}

impl FrameDatagrams for protocol::native::send::Datagrams {
    fn as_bytes(&self) -> &[u8] {
        protocol::native::send::Datagrams::as_bytes(self)
    }

    fn datagram_len(&self) -> usize {
        protocol::native::send::Datagrams::datagram_len(self)
    }
}

/// A packetized frame for the [`SenderThread`]: its datagrams, where they go and on which
/// schedule.
#[derive(Debug)]
pub struct OutgoingFrame<D = VideoDatagrams> {
    /// The client's video address.
    pub dest: SocketAddr,
    /// The frame's datagrams; they come back through [`SenderThread::buffer`] once sent.
    pub datagrams: D,
    /// The stream's pacing when the frame was packetized.
    pub pacing: Pacing,
}

/// A stream's sender thread: it sends each frame handed to it on the frame's [`Pacing`]
/// schedule with a [`VideoSender`], while the thread that handed it over encodes the next one.
///
/// It lives in a [`std::thread::scope`], borrowing the stream's socket. Dropping it (or
/// [`SenderThread::finish`]) lets the thread send what it was given and end.
#[derive(Debug)]
pub struct SenderThread<'scope, D: FrameDatagrams + 'static = VideoDatagrams> {
    frames: mpsc::SyncSender<OutgoingFrame<D>>,
    spent: mpsc::Receiver<D>,
    /// When the last batch of the frames handed over so far is due.
    free_at: Instant,
    thread: ScopedJoinHandle<'scope, ()>,
}

impl<'scope, D: FrameDatagrams + 'static> SenderThread<'scope, D> {
    /// Starts the thread in `scope`, sending on `socket` with `sender`.
    pub fn spawn<'env>(
        scope: &'scope Scope<'scope, 'env>,
        socket: &'env UdpSocket,
        sender: VideoSender,
    ) -> io::Result<Self> {
        Self::spawn_counting(scope, socket, sender, Arc::default())
    }

    /// [`SenderThread::spawn`], adding the datagrams the kernel refused to `failed`.
    pub fn spawn_counting<'env>(
        scope: &'scope Scope<'scope, 'env>,
        socket: &'env UdpSocket,
        mut sender: VideoSender,
        failed: Arc<AtomicU64>,
    ) -> io::Result<Self> {
        let (frames, queued) = mpsc::sync_channel::<OutgoingFrame<D>>(SENDER_QUEUE);
        let (give_back, spent) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("video-send".into())
            .spawn_scoped(scope, move || {
                for frame in queued {
                    let d = &frame.datagrams;
                    let report = sender.send(
                        socket,
                        frame.dest,
                        d.as_bytes(),
                        d.datagram_len(),
                        &frame.pacing,
                    );
                    trace!(?report, "frame sent");
                    if report.failed > 0 {
                        failed.fetch_add(report.failed as u64, Ordering::Relaxed);
                    }
                    // Without a receiver the stream is ending; the buffer goes with it.
                    let _ = give_back.send(frame.datagrams);
                }
            })?;
        Ok(Self {
            frames,
            spent,
            free_at: Instant::now(),
            thread,
        })
    }

    /// A buffer to packetize the next frame into: one whose frame has been sent, or a new one.
    pub fn buffer(&self) -> D {
        self.spent.try_recv().unwrap_or_default()
    }

    /// When a frame handed over at `now` starts leaving: at once, or when the last batch of the
    /// frames before it is due. With [`Pacing::duration`], what the frame header's host
    /// latency is planned from.
    pub fn starts_at(&self, now: Instant) -> Instant {
        self.free_at.max(now)
    }

    /// Hands `frame` to the thread, waiting while `SENDER_QUEUE` frames already wait behind
    /// the one being sent. Errors only when the thread is gone (it panicked).
    pub fn send(&mut self, frame: OutgoingFrame<D>) -> anyhow::Result<()> {
        let d = &frame.datagrams;
        let spread = frame.pacing.duration(d.count(), d.datagram_len());
        self.free_at = self.starts_at(Instant::now()) + spread;
        self.frames
            .send(frame)
            .map_err(|_| anyhow!("the video sender thread has ended"))
    }

    /// Lets the thread send every frame it was given, and waits for it to end.
    pub fn finish(self) -> anyhow::Result<()> {
        drop(self.frames);
        self.thread
            .join()
            .map_err(|_| anyhow!("the video sender thread panicked"))
    }
}

/// Errors that say the socket or route cannot segment, as opposed to a failed send.
fn refuses_segmentation(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// A socket address in the form the kernel takes.
struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
}

impl From<SocketAddr> for SockAddr {
    fn from(addr: SocketAddr) -> Self {
        // SAFETY: sockaddr_storage is plain data; all zeroes is a valid (empty) value.
        let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
                size_of::<libc::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
                unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
                size_of::<libc::sockaddr_in6>()
            }
        };
        SockAddr {
            storage,
            len: len as libc::socklen_t,
        }
    }
}

/// One `sendmsg` of all of `data` with `UDP_SEGMENT` = `len`: the kernel sends `data.len() / len`
/// datagrams.
fn send_segmented(socket: &UdpSocket, addr: &SockAddr, data: &[u8], len: usize) -> io::Result<()> {
    let segment = u16::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // Room for one cmsg carrying a u16, aligned as cmsghdr wants.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(size_of::<u16>() as u32) } as usize;
    debug_assert!(space <= size_of_val(&control));
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: msghdr is plain data; zeroed is an empty message.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_name = &addr.storage as *const _ as *mut libc::c_void;
    msg.msg_namelen = addr.len;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` bytes of our buffer, so CMSG_FIRSTHDR is non-null and
    // the header and its u16 payload fit; the kernel only reads `data` through the iovec.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_UDP;
        (*cmsg).cmsg_type = libc::UDP_SEGMENT;
        (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<u16>() as u32) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut u16, segment);
        libc::sendmsg(socket.as_raw_fd(), &msg, 0)
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `sendmmsg` of the datagrams in `data`, repeated until the kernel has taken them all.
fn send_many(socket: &UdpSocket, addr: &SockAddr, data: &[u8], len: usize) -> io::Result<()> {
    let count = data.len() / len;
    let mut iovs: [libc::iovec; MAX_BATCH_DATAGRAMS] = [libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }; MAX_BATCH_DATAGRAMS];
    // SAFETY: mmsghdr is plain data; zeroed is an empty message.
    let mut msgs: [libc::mmsghdr; MAX_BATCH_DATAGRAMS] = unsafe { mem::zeroed() };
    let mut done = 0;
    while done < count {
        let n = (count - done).min(MAX_BATCH_DATAGRAMS);
        for i in 0..n {
            let d = &data[(done + i) * len..][..len];
            iovs[i] = libc::iovec {
                iov_base: d.as_ptr() as *mut libc::c_void,
                iov_len: len,
            };
            let h = &mut msgs[i].msg_hdr;
            h.msg_name = &addr.storage as *const _ as *mut libc::c_void;
            h.msg_namelen = addr.len;
            h.msg_iov = &mut iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: the first `n` headers point at live iovecs over `data` and at `addr`, all of
        // which outlive the call; the kernel only reads them.
        let sent = unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        if sent == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        done += sent as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEN: usize = 1408;
    const INTERVAL: Duration = Duration::from_micros(16_667);

    fn pacing(mbps: u64) -> Pacing {
        Pacing {
            bitrate_bps: mbps * 1_000_000,
            frame_interval: INTERVAL,
        }
    }

    #[test]
    fn a_normal_frame_leaves_at_once() {
        // 20 Mb/s at 60 fps: 42 kB a frame on average; a frame of twice that is still one burst.
        let p = pacing(20);
        let count = 2 * 41_667 / LEN;
        let batches: Vec<Batch> = p.schedule(count, LEN).collect();
        assert!(
            batches.iter().all(|b| b.at == Duration::ZERO),
            "{batches:?}"
        );
        assert_eq!(p.duration(count, LEN), Duration::ZERO);
        // A tiny frame: one datagram, one batch.
        assert_eq!(
            p.schedule(1, LEN).collect::<Vec<_>>(),
            [Batch {
                at: Duration::ZERO,
                start: 0,
                end: 1
            }]
        );
    }

    #[test]
    fn a_large_frame_is_spread_within_half_the_interval() {
        // An 800 kB IDR on a 20 Mb/s stream.
        let p = pacing(20);
        let count = 800_000 / LEN;
        let batches: Vec<Batch> = p.schedule(count, LEN).collect();
        let last = batches.last().unwrap().at;
        assert!(last > INTERVAL / 4 && last <= INTERVAL / 2, "{last:?}");
        // Batches cover every datagram once, in order, none too big, times never going back.
        assert_eq!(batches[0].start, 0);
        assert_eq!(batches.last().unwrap().end, count);
        for w in batches.windows(2) {
            assert_eq!(w[0].end, w[1].start);
            assert!(w[0].at <= w[1].at);
        }
        assert!(batches
            .iter()
            .all(|b| b.end - b.start <= MAX_BATCH_DATAGRAMS
                && (b.end - b.start) * LEN <= MAX_BATCH_BYTES));
        // What fits the burst is due at once.
        let burst = p.burst_bytes();
        assert!(batches
            .iter()
            .filter(|b| b.start * LEN < burst)
            .all(|b| b.at == Duration::ZERO));
    }

    #[test]
    fn a_fast_stream_paces_at_a_multiple_of_its_rate() {
        // 150 Mb/s: 1.2 Gb/s for the paced part, so a 1.2 MB frame's last batch is due about
        // (1.2 MB - burst) / 150 MB/s after its first, well inside half the interval.
        let p = pacing(150);
        let count = 1_200_000 / LEN;
        let d = p.duration(count, LEN).as_secs_f64();
        let expect = (count * LEN - p.burst_bytes()) as f64 / 150e6;
        assert!((d - expect).abs() < 0.001, "{d} vs {expect}");
    }

    #[test]
    fn small_datagrams_make_batches_of_at_most_64() {
        assert_eq!(Pacing::batch_len(100), 64);
        assert_eq!(Pacing::batch_len(1408), 46);
        assert_eq!(Pacing::batch_len(65_000), 1);
        assert_eq!(Pacing::batch_len(70_000), 1);
    }

    /// A receiving socket on loopback that records the kernel's arrival time of each datagram.
    struct Receiver {
        socket: UdpSocket,
    }

    /// `SO_TIMESTAMPNS` (asm-generic): arrival times as a `timespec` in a control message.
    const SO_TIMESTAMPNS: libc::c_int = 35;

    impl Receiver {
        fn bind() -> Receiver {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            let fd = socket.as_raw_fd();
            let size: libc::c_int = 8 << 20;
            let on: libc::c_int = 1;
            // SAFETY: setsockopt with an int option value that lives through the call.
            unsafe {
                // The forced size needs privileges; the plain one is capped by rmem_max.
                if libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    &size as *const _ as *const _,
                    4,
                ) != 0
                {
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        libc::SO_RCVBUF,
                        &size as *const _ as *const _,
                        4,
                    );
                }
                assert_eq!(
                    libc::setsockopt(
                        fd,
                        libc::SOL_SOCKET,
                        SO_TIMESTAMPNS,
                        &on as *const _ as *const _,
                        4
                    ),
                    0
                );
            }
            socket
                .set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            Receiver { socket }
        }

        /// Datagrams until none arrives for half a second: (payload, arrival in ns).
        fn collect(&self) -> Vec<(Vec<u8>, i128)> {
            let mut out = Vec::new();
            let mut buf = vec![0u8; 65_536];
            loop {
                let mut control = [0u64; 8];
                let mut iov = libc::iovec {
                    iov_base: buf.as_mut_ptr() as *mut _,
                    iov_len: buf.len(),
                };
                // SAFETY: msghdr is plain data; the buffers it points at outlive recvmsg.
                let mut msg: libc::msghdr = unsafe { mem::zeroed() };
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr() as *mut _;
                msg.msg_controllen = size_of_val(&control) as _;
                // SAFETY: as above.
                let n = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut msg, 0) };
                if n < 0 {
                    break;
                }
                let mut at = None;
                // SAFETY: walking the control messages the kernel wrote into `control`.
                unsafe {
                    let mut c = libc::CMSG_FIRSTHDR(&msg);
                    while !c.is_null() {
                        if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == SO_TIMESTAMPNS {
                            let ts = std::ptr::read_unaligned(
                                libc::CMSG_DATA(c) as *const libc::timespec
                            );
                            at = Some(
                                i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec),
                            );
                        }
                        c = libc::CMSG_NXTHDR(&msg, c);
                    }
                }
                out.push((buf[..n as usize].to_vec(), at.expect("no arrival time")));
            }
            out
        }
    }

    /// `count` datagrams of `LEN` bytes, each starting with its index.
    fn frame(count: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; count * LEN];
        for (i, d) in bytes.chunks_exact_mut(LEN).enumerate() {
            d[..4].copy_from_slice(&(i as u32).to_le_bytes());
            d[4..].fill(i as u8);
        }
        bytes
    }

    fn send_on_loopback(
        mut sender: VideoSender,
        count: usize,
        p: Pacing,
    ) -> (SendReport, Vec<(Vec<u8>, i128)>) {
        let rx = Receiver::bind();
        let dest = rx.socket.local_addr().unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let bytes = frame(count);
        let collector = std::thread::spawn(move || rx.collect());
        let report = sender.send(&tx, dest, &bytes, LEN, &p);
        (report, collector.join().unwrap())
    }

    fn check_arrivals(count: usize, arrivals: &[(Vec<u8>, i128)]) -> Duration {
        let expected = frame(count);
        assert_eq!(arrivals.len(), count, "datagrams lost on loopback");
        for (i, (d, _)) in arrivals.iter().enumerate() {
            assert_eq!(
                d.as_slice(),
                &expected[i * LEN..][..LEN],
                "datagram {i} out of order or wrong"
            );
        }
        let first = arrivals.first().unwrap().1;
        let last = arrivals.last().unwrap().1;
        Duration::from_nanos((last - first) as u64)
    }

    #[test]
    fn a_large_frame_arrives_whole_in_order_and_spread_over_part_of_the_interval() {
        for segmentation in [false, true] {
            // 600 datagrams (845 kB, an IDR twenty times the average frame) on a 20 Mb/s stream.
            let p = pacing(20);
            let count = 600;
            let planned = p.duration(count, LEN);
            // A machine busy with other work can delay the sending thread now and then: past
            // the interval, or between taking its start time and the first send, after which
            // the batches already due leave at once and the spread comes out short. The pacing
            // must hold in one of five tries.
            let mut spreads = Vec::new();
            for _ in 0..5 {
                let sender = if segmentation {
                    VideoSender::with_segmentation()
                } else {
                    VideoSender::new()
                };
                let (report, arrivals) = send_on_loopback(sender, count, p);
                assert_eq!((report.sent, report.failed), (count, 0), "{report:?}");
                assert_eq!(report.batches, count.div_ceil(Pacing::batch_len(LEN)));
                let spread = check_arrivals(count, &arrivals);
                // Never one burst, however busy the machine.
                assert!(spread >= INTERVAL / 4, "{spread:?}");
                spreads.push(spread);
                // Not before the plan (about half the interval, 8 ms: the last batch cannot
                // leave before it is due), and all of it within the frame interval.
                if spread >= planned - Duration::from_micros(500) && spread < INTERVAL {
                    break;
                }
            }
            assert!(
                spreads
                    .iter()
                    .any(|s| *s >= planned - Duration::from_micros(500) && *s < INTERVAL),
                "never spread as planned ({planned:?}) within the interval: {spreads:?}"
            );
        }
    }

    #[test]
    fn a_small_frame_arrives_at_once() {
        let (report, arrivals) = send_on_loopback(VideoSender::new(), 30, pacing(20));
        assert_eq!(report.sent, 30);
        assert_eq!(report.batches, 1);
        let spread = check_arrivals(30, &arrivals);
        assert!(spread < Duration::from_millis(2), "{spread:?}");
    }

    /// A frame of `count` datagrams as the packetizer writes it.
    fn packetized(count: usize, seed: u8) -> VideoDatagrams {
        use protocol::video::{FrameType, VideoConfig, VideoPacketizer};
        let mut packetizer = VideoPacketizer::new(VideoConfig {
            packet_size: LEN,
            fec_percent: 0,
            ..VideoConfig::default()
        })
        .unwrap();
        let payload: Vec<u8> = (0..count * (LEN - 100)).map(|i| (i as u8) ^ seed).collect();
        let mut datagrams = VideoDatagrams::new();
        packetizer
            .packetize(&payload, FrameType::P, 0, 0, &mut datagrams)
            .unwrap();
        datagrams
    }

    #[test]
    fn the_sender_thread_paces_frames_in_order_while_the_caller_goes_on() {
        // Two large frames at 5 fps and 2 Mb/s: each spread over up to half of 200 ms.
        let p = Pacing {
            bitrate_bps: 2_000_000,
            frame_interval: Duration::from_millis(200),
        };
        let frames = [packetized(300, 1), packetized(200, 2)];
        let planned = p.duration(frames[0].len(), frames[0].datagram_len());
        assert!(planned >= Duration::from_millis(50), "{planned:?}");
        let rx = Receiver::bind();
        let dest = rx.socket.local_addr().unwrap();
        let collector = std::thread::spawn(move || rx.collect());
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        std::thread::scope(|scope| {
            let mut sender = SenderThread::spawn(scope, &tx, VideoSender::new()).unwrap();
            let handed = Instant::now();
            assert!(sender.starts_at(handed) <= handed + Duration::from_millis(1));
            for datagrams in frames.clone() {
                sender
                    .send(OutgoingFrame {
                        dest,
                        datagrams,
                        pacing: p,
                    })
                    .unwrap();
            }
            // Both are handed over long before the first has left: the second waits in the
            // queue, and the sender knows when it will start.
            let took = handed.elapsed();
            assert!(took < planned / 2, "handing over took {took:?}");
            let second_starts = sender.starts_at(Instant::now());
            assert!(second_starts >= handed + planned, "{second_starts:?}");
            // The first frame's buffer comes back, once sent, to packetize into again.
            let deadline = Instant::now() + Duration::from_secs(5);
            let back = loop {
                let buffer = sender.buffer();
                if !buffer.is_empty() || Instant::now() > deadline {
                    break buffer;
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            assert_eq!(back.as_bytes(), frames[0].as_bytes());
            sender.finish().unwrap();
        });
        let arrivals = collector.join().unwrap();
        let expected: Vec<&[u8]> = frames.iter().flat_map(|f| f.iter()).collect();
        assert_eq!(arrivals.len(), expected.len(), "datagrams lost on loopback");
        for (i, ((got, _), want)) in arrivals.iter().zip(&expected).enumerate() {
            assert_eq!(got.as_slice(), *want, "datagram {i} out of order or wrong");
        }
    }
}
