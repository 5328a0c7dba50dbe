//! The data plane: one UDP socket read on a native thread, datagrams routed by their plane's
//! magic byte to a [`Reassembler`] each, whole video frames handed to the decoder thread.
//!
//! The thread does nothing that can stall for long: opening a datagram, the occasional FEC
//! recovery, and a channel send per frame. Decoding happens elsewhere ([`crate::decode`]).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use protocol::native::header::Plane;
use protocol::native::{DataKey, Event, Reassembler, ReassemblyConfig, HEADER_LEN};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc::UnboundedSender;

use crate::audio::AudioDecoder;
use crate::clock::monotonic_ns;
use crate::report::Dropped;

/// Receive buffer asked for: a keyframe burst at a high rate must fit.
const RECV_BUFFER: usize = 32 << 20;
/// How long a read waits, so the thread sees timeouts and the stop flag.
const READ_TIMEOUT: Duration = Duration::from_millis(5);

/// What the data and decode threads tell the control task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Notice {
    /// The first video frame was reassembled.
    FirstFrame,
    /// The first video frame was decoded (or, for a synthetic stream, reassembled).
    FirstDecoded,
    /// Video frames were given up: ask for a keyframe.
    Lost,
}

/// A whole video frame for the decoder.
#[derive(Debug)]
pub(crate) struct VideoFrame {
    pub(crate) pts_ns: u64,
    pub(crate) data: Vec<u8>,
}

/// Counters the control task reads for its loss reports.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    /// Video datagrams that authenticated.
    pub(crate) received: AtomicU64,
    /// Video datagrams the sender numbered so far (highest sequence + 1).
    pub(crate) expected: AtomicU64,
    pub(crate) frames_lost: AtomicU64,
    pub(crate) frames_recovered: AtomicU64,
}

/// What the receive thread counted.
#[derive(Debug, Default)]
pub(crate) struct ReceiveStats {
    pub(crate) frames_received: u64,
    pub(crate) frames_lost: u64,
    pub(crate) fec_recovered: u64,
    pub(crate) keyframes: u64,
    pub(crate) frame_number_gaps: u64,
    pub(crate) video_bytes: u64,
    pub(crate) first_frame: Option<Instant>,
    pub(crate) last_frame: Option<Instant>,
    pub(crate) audio_frames: u64,
    pub(crate) audio_lost: u64,
    pub(crate) datagrams: u64,
    pub(crate) dropped: Dropped,
    /// (client monotonic ns at reassembly, pts) per video frame.
    pub(crate) reassembled: Vec<(u64, u64)>,
    /// The host's encode time per video frame, µs, in the same order (0: not said).
    pub(crate) encode_us: Vec<u32>,
    /// The audio decoder, with what it decoded.
    pub(crate) audio: Option<AudioDecoder>,
}

/// The client's data socket: bound on the connection's address family, any port.
pub(crate) fn bind_socket(peer: IpAddr) -> anyhow::Result<UdpSocket> {
    let bind: SocketAddr = match peer {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))
        .context("cannot open the data socket")?;
    raise_receive_buffer(&socket);
    socket
        .bind(&bind.into())
        .context("cannot bind the data socket")?;
    let socket = UdpSocket::from(socket);
    socket.set_read_timeout(Some(READ_TIMEOUT))?;
    Ok(socket)
}

/// Asks for [`RECV_BUFFER`]; past `rmem_max` only root may (`SO_RCVBUFFORCE`).
fn raise_receive_buffer(socket: &Socket) {
    let _ = socket.set_recv_buffer_size(RECV_BUFFER);
    // The kernel reports twice what it granted.
    if socket.recv_buffer_size().unwrap_or(0) >= RECV_BUFFER {
        return;
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        use std::os::fd::AsRawFd;
        let size = RECV_BUFFER as libc::c_int;
        // SAFETY: the fd is open for the life of `socket`; the option value points to a c_int
        // of the length passed.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const libc::c_int).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
}

/// The running receive thread.
pub(crate) struct Receiver {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ReceiveStats>,
}

impl Receiver {
    /// Starts reading `socket`. Video frames go to `frames` (none for a synthetic stream).
    pub(crate) fn spawn(
        socket: UdpSocket,
        key: &DataKey,
        frames: Option<mpsc::Sender<VideoFrame>>,
        audio: Option<AudioDecoder>,
        notices: UnboundedSender<Notice>,
        live: Arc<LiveCounters>,
    ) -> anyhow::Result<Receiver> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut state = State {
            audio_decoder: audio,
            video: Reassembler::new(key, Plane::Video, ReassemblyConfig::default()),
            audio: Reassembler::new(key, Plane::Audio, ReassemblyConfig::default()),
            frames,
            notices,
            live,
            stats: ReceiveStats::default(),
            last_index: None,
        };
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("pf-receive".into())
            .spawn(move || {
                state.run(&socket, &flag);
                state.finish()
            })
            .context("cannot start the receive thread")?;
        Ok(Receiver { stop, thread })
    }

    /// Stops the thread and returns its counters.
    pub(crate) fn stop(self) -> ReceiveStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

struct State {
    video: Reassembler,
    audio: Reassembler,
    audio_decoder: Option<AudioDecoder>,
    frames: Option<mpsc::Sender<VideoFrame>>,
    notices: UnboundedSender<Notice>,
    live: Arc<LiveCounters>,
    stats: ReceiveStats,
    last_index: Option<u32>,
}

impl State {
    fn run(&mut self, socket: &UdpSocket, stop: &AtomicBool) {
        let mut batch = RecvBatch::new();
        while !stop.load(Ordering::Relaxed) {
            match batch.recv(socket) {
                Ok(n) => {
                    let now = Instant::now();
                    for i in 0..n {
                        match batch.datagram(i) {
                            Some(d) => self.handle_datagram(now, d),
                            None => {
                                // Longer than any datagram of the shard size asked for.
                                self.stats.datagrams += 1;
                                self.stats.dropped.too_large += 1;
                            }
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) => {}
                // An ICMP error of an earlier send, or a signal: keep reading.
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
            let now = Instant::now();
            for r in [&mut self.video, &mut self.audio] {
                if r.poll_timeout().is_some_and(|t| t <= now) {
                    r.handle_timeout(now);
                }
            }
            self.drain_events(now);
        }
    }

    fn handle_datagram(&mut self, now: Instant, d: &[u8]) {
        self.stats.datagrams += 1;
        match d.first().copied().and_then(Plane::from_magic) {
            Some(Plane::Video) => {
                let before = self.video.stats().datagrams;
                let _ = self.video.handle_datagram(now, d);
                if self.video.stats().datagrams != before && d.len() >= HEADER_LEN {
                    // Authenticated: its sequence number is the sender's.
                    let seq = u64::from_le_bytes(d[4..12].try_into().unwrap_or_default());
                    self.live.received.fetch_add(1, Ordering::Relaxed);
                    self.live.expected.fetch_max(seq + 1, Ordering::Relaxed);
                }
            }
            Some(Plane::Audio) => {
                let _ = self.audio.handle_datagram(now, d);
            }
            _ => self.stats.dropped.unknown_plane += 1,
        }
        self.drain_events(now);
    }

    fn drain_events(&mut self, now: Instant) {
        while let Some(e) = self.video.poll_event() {
            match e {
                Event::Frame {
                    index,
                    pts_ns,
                    keyframe,
                    encode_us,
                    data,
                    recovered,
                } => {
                    self.stats.encode_us.push(encode_us);
                    self.handle_frame(now, index, pts_ns, keyframe, data, recovered);
                }
                Event::Lost { first, last } => {
                    let n = u64::from(last.wrapping_sub(first)) + 1;
                    self.stats.frames_lost += n;
                    self.live.frames_lost.fetch_add(n, Ordering::Relaxed);
                    let _ = self.notices.send(Notice::Lost);
                }
            }
        }
        while let Some(e) = self.audio.poll_event() {
            match e {
                Event::Frame { data, .. } => {
                    self.stats.audio_frames += 1;
                    if let Some(d) = &mut self.audio_decoder {
                        d.decode(&data);
                    }
                }
                Event::Lost { first, last } => {
                    let n = u64::from(last.wrapping_sub(first)) + 1;
                    self.stats.audio_lost += n;
                    if let Some(d) = &mut self.audio_decoder {
                        d.conceal(n);
                    }
                }
            }
        }
    }

    fn handle_frame(
        &mut self,
        now: Instant,
        index: u32,
        pts_ns: u64,
        keyframe: bool,
        data: Vec<u8>,
        recovered: bool,
    ) {
        let s = &mut self.stats;
        s.reassembled.push((monotonic_ns(), pts_ns));
        if s.first_frame.is_none() {
            s.first_frame = Some(now);
            let _ = self.notices.send(Notice::FirstFrame);
            if self.frames.is_none() {
                let _ = self.notices.send(Notice::FirstDecoded);
            }
        }
        s.last_frame = Some(now);
        s.frames_received += 1;
        s.video_bytes += data.len() as u64;
        s.keyframes += u64::from(keyframe);
        if recovered {
            s.fec_recovered += 1;
            self.live.frames_recovered.fetch_add(1, Ordering::Relaxed);
        }
        if self
            .last_index
            .is_some_and(|last| index != last.wrapping_add(1))
        {
            s.frame_number_gaps += 1;
        }
        self.last_index = Some(index);
        if let Some(tx) = &self.frames {
            if tx.send(VideoFrame { pts_ns, data }).is_err() {
                // The decoder ended (an error it reported); keep counting.
                self.frames = None;
            }
        }
    }

    fn finish(mut self) -> ReceiveStats {
        self.stats.audio = self.audio_decoder.take();
        self.stats.dropped.add(self.video.stats());
        self.stats.dropped.add(self.audio.stats());
        self.stats
    }
}

/// Datagrams one `recvmmsg` reads at most.
const BATCH: usize = 64;
/// Room for one datagram: the 1464 bytes of the default shard size, and more.
const SLOT: usize = 2048;

/// Buffers for reading up to [`BATCH`] datagrams with one `recvmmsg`.
struct RecvBatch {
    bufs: Vec<u8>,
    lens: [usize; BATCH],
    truncated: [bool; BATCH],
}

impl RecvBatch {
    fn new() -> RecvBatch {
        RecvBatch {
            bufs: vec![0; BATCH * SLOT],
            lens: [0; BATCH],
            truncated: [false; BATCH],
        }
    }

    /// Waits for datagrams (up to the socket's read timeout) and reads those queued, at most
    /// [`BATCH`]; returns how many.
    fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        let base = self.bufs.as_mut_ptr();
        let mut iov: [libc::iovec; BATCH] = std::array::from_fn(|i| libc::iovec {
            // SAFETY: slot `i` lies within `bufs`, which holds BATCH slots.
            iov_base: unsafe { base.add(i * SLOT) }.cast(),
            iov_len: SLOT,
        });
        // SAFETY: an all-zero mmsghdr is a valid empty one (null name and control).
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: every header points at one iovec of SLOT writable bytes in `bufs`; all of it
        // lives across the call. MSG_WAITFORONE: block (up to SO_RCVTIMEO) for the first only.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, m) in msgs.iter().take(n).enumerate() {
            self.lens[i] = (m.msg_len as usize).min(SLOT);
            self.truncated[i] = m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        Ok(n)
    }

    /// Datagram `i` of the last read; `None` when it did not fit its slot.
    fn datagram(&self, i: usize) -> Option<&[u8]> {
        (!self.truncated[i]).then(|| &self.bufs[i * SLOT..i * SLOT + self.lens[i]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_reads_every_queued_datagram_and_marks_the_oversized_one() {
        let rx = bind_socket(IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
        let to = SocketAddr::from((Ipv4Addr::LOCALHOST, rx.local_addr().unwrap().port()));
        let tx = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        for i in 0..100u32 {
            let len = if i == 70 { SLOT + 500 } else { 40 + i as usize };
            let mut d = vec![0u8; len];
            d[..4].copy_from_slice(&i.to_le_bytes());
            tx.send_to(&d, to).unwrap();
        }
        let mut batch = RecvBatch::new();
        let (mut got, mut oversized, mut reads) = (Vec::new(), Vec::new(), 0);
        while got.len() + oversized.len() < 100 {
            let n = batch.recv(&rx).unwrap();
            assert!((1..=BATCH).contains(&n));
            reads += 1;
            for i in 0..n {
                match batch.datagram(i) {
                    Some(d) => got.push((u32::from_le_bytes(d[..4].try_into().unwrap()), d.len())),
                    None => oversized.push(i),
                }
            }
        }
        // 100 datagrams in two reads (64, then 36): queued ones come in one call.
        assert_eq!(reads, 2);
        assert_eq!(oversized.len(), 1);
        let expected: Vec<(u32, usize)> = (0..100u32)
            .filter(|&i| i != 70)
            .map(|i| (i, 40 + i as usize))
            .collect();
        assert_eq!(got, expected);
        // Nothing queued: the read gives up after the socket's timeout.
        let err = batch.recv(&rx).unwrap_err();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
    }
}
