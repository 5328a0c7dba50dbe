//! VAAPI, for `*_vaapi` to encode the frames the GPU converted ([`compositor::YuvImage`]) where
//! they lie.
//!
//! The compositor converts a frame into one of its Y'CbCr buffers: linear, the planes one after
//! another at one pitch, which is how a two-plane NV12 (P010) surface lies in memory. Each buffer
//! is imported as a VA surface once (its dmabuf described as DRM PRIME planes and mapped by
//! FFmpeg into the encoder's pool, `vaCreateSurfaces`), and the encoder reads that surface: the
//! frame is neither copied nor converted again. The colour conversion is the compositor's shader,
//! with the client's matrix and range.
//!
//! The image travels with the frame into the encoder and goes back to the compositor when the
//! encoder lets the frame go, so nothing draws into a buffer the encoder may still read.

use std::ffi::c_void;
use std::os::fd::{AsFd, AsRawFd, IntoRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use compositor::{YuvImage, YuvLayout};
use ffmpeg::ffi::{AVDRMFrameDescriptor, AVDRMLayerDescriptor, AVDRMPlaneDescriptor};
use ffmpeg_next as ffmpeg;
use tracing::info;

use super::per_buffer::PerBuffer;
use super::video::{layout_format, vaapi_frames, HwBuffer};

/// The DRM format code of `name`.
const fn fourcc(name: &[u8; 4]) -> u32 {
    u32::from_le_bytes(*name)
}

/// `DRM_FORMAT_NV12`: one layer, luma and interleaved chroma planes.
const DRM_NV12: u32 = fourcc(b"NV12");
/// `DRM_FORMAT_R16` and `DRM_FORMAT_RG1616`: P010 as FFmpeg maps it, a layer a plane.
const DRM_R16: u32 = fourcc(b"R16 ");
const DRM_RG1616: u32 = fourcc(b"RG32");
/// `DRM_FORMAT_MOD_LINEAR`.
const MODIFIER_LINEAR: u64 = 0;

/// The VA surfaces of the compositor's Y'CbCr buffers, one a buffer, made on first sight.
pub struct VaapiImporter {
    /// Each buffer's surface: a frame of the encoder's pool, mapped from the buffer's dmabuf.
    surfaces: PerBuffer<ffmpeg::frame::Video>,
}

impl Default for VaapiImporter {
    fn default() -> Self {
        Self::new()
    }
}

impl VaapiImporter {
    pub fn new() -> VaapiImporter {
        VaapiImporter {
            surfaces: PerBuffer::new(),
        }
    }

    /// Makes `frame` (ours) a frame of the VAAPI pool `frames` whose surface is `image`'s
    /// buffer, importing the buffer the first time it is seen. The frame holds `image` until
    /// the last reference to it goes (the encoder's, once it has read the surface). Waits for
    /// the GPU to finish the conversion first.
    pub(super) fn fill(
        &mut self,
        frames: &HwBuffer,
        image: &Arc<YuvImage>,
        frame: &mut ffmpeg::frame::Video,
    ) -> Result<(), String> {
        image.wait_rendered().map_err(|err| err.to_string())?;
        let surface = self.surface(frames, image)?;
        // SAFETY: `frame` is ours; it becomes a new reference to the mapped surface (whose
        // buffers are refcounted), and a free buffer slot gets a reference that owns a clone of
        // the image, released by `release_image` when the frame's last reference goes.
        unsafe {
            let f = frame.as_mut_ptr();
            ffmpeg::ffi::av_frame_unref(f);
            let ret = ffmpeg::ffi::av_frame_ref(f, surface.as_ptr());
            if ret < 0 {
                return Err(format!(
                    "referencing a VA surface: {}",
                    ffmpeg::Error::from(ret)
                ));
            }
            let Some(slot) = (*f).buf.iter().position(|b| b.is_null()) else {
                ffmpeg::ffi::av_frame_unref(f);
                return Err("no room in the frame to hold the image".into());
            };
            let held = Box::into_raw(Box::new(image.clone()));
            let buffer = ffmpeg::ffi::av_buffer_create(
                held.cast(),
                size_of::<Arc<YuvImage>>(),
                Some(release_image),
                ptr::null_mut(),
                ffmpeg::ffi::AV_BUFFER_FLAG_READONLY,
            );
            if buffer.is_null() {
                drop(Box::from_raw(held));
                ffmpeg::ffi::av_frame_unref(f);
                return Err("out of memory".into());
            }
            (*f).buf[slot] = buffer;
        }
        Ok(())
    }

    /// The surface of `image`'s buffer in the pool `frames`, imported on first sight.
    fn surface(
        &mut self,
        frames: &HwBuffer,
        image: &YuvImage,
    ) -> Result<&ffmpeg::frame::Video, String> {
        let buffer = image
            .buffer()
            .ok_or("the picture is not in a GBM buffer, which VAAPI imports")?;
        let first = self.surfaces.is_empty();
        let make = || {
            let surface = import(frames, image)?;
            if first {
                info!("frames reach VAAPI from the compositor's GPU buffers, imported as they are");
            }
            Ok(surface)
        };
        self.surfaces.get_or_make(buffer.egl_image(), make, drop)
    }
}

/// Frees what [`VaapiImporter::fill`] put into a frame: its clone of the image, which goes back
/// to the compositor with the last one.
unsafe extern "C" fn release_image(_opaque: *mut c_void, data: *mut u8) {
    // SAFETY: `data` is the box `fill` leaked for this buffer, freed once, here.
    drop(unsafe { Box::from_raw(data.cast::<Arc<YuvImage>>()) });
}

/// Frees a descriptor [`import`] made, and closes its file descriptors.
unsafe extern "C" fn free_descriptor(_opaque: *mut c_void, data: *mut u8) {
    // SAFETY: `data` is the box `import` leaked for this buffer, freed once, here; its object
    // file descriptors are ours.
    let desc = unsafe { Box::from_raw(data.cast::<AVDRMFrameDescriptor>()) };
    for object in &desc.objects[..desc.nb_objects.max(0) as usize] {
        if object.fd >= 0 {
            // SAFETY: see above.
            unsafe { libc::close(object.fd) };
        }
    }
}

/// `image`'s buffer as a surface of the VAAPI pool `frames`: its dmabuf described as the planes
/// of the image's layout and mapped (`av_hwframe_map`, which creates the VA surface from it).
fn import(frames: &HwBuffer, image: &YuvImage) -> Result<ffmpeg::frame::Video, String> {
    let buffer = image
        .buffer()
        .ok_or("the picture is not in a GBM buffer, which VAAPI imports")?;
    if !buffer.is_linear() {
        return Err(format!(
            "the Y'CbCr buffer is not linear (modifier {:#x}), so its bytes are not the planes",
            buffer.modifier()
        ));
    }
    let planes = buffer.planes();
    let [plane] = planes.as_slice() else {
        return Err(format!(
            "the Y'CbCr buffer has {} dmabuf planes, not one",
            planes.len()
        ));
    };
    let first_rows: Vec<u32> = (0..image.layout().planes())
        .map(|p| image.plane_row(p))
        .collect();
    let layers = drm_layers(image.layout(), &first_rows, buffer.pitch(), plane.offset)?;
    let fd: OwnedFd = plane
        .fd
        .as_fd()
        .try_clone_to_owned()
        .map_err(|err| format!("duplicating the dmabuf: {err}"))?;
    // The dmabuf's size, as the kernel gives it (what lies past the last plane's rows too). The
    // duplicate shares its file offset with the compositor's descriptor, which nothing reads
    // through (a dmabuf is mapped or imported, never read at an offset).
    // SAFETY: a plain call on a descriptor of ours.
    let size = unsafe { libc::lseek(fd.as_raw_fd(), 0, libc::SEEK_END) };
    let size = if size > 0 {
        size as usize
    } else {
        (plane.offset + buffer.pitch() * buffer.rows()) as usize
    };
    // SAFETY: all zeros is a value of this plain C struct.
    let mut desc: Box<AVDRMFrameDescriptor> = Box::new(unsafe { std::mem::zeroed() });
    desc.nb_objects = 1;
    desc.objects[0].fd = fd.into_raw_fd();
    desc.objects[0].size = size;
    // Linear, also where the driver allocated it so without a modifier.
    desc.objects[0].format_modifier = MODIFIER_LINEAR;
    desc.nb_layers = layers.len() as i32;
    for (slot, layer) in desc.layers.iter_mut().zip(&layers) {
        *slot = *layer;
    }
    // SAFETY: `src` and `dst` are frames of ours. `src` is a DRM PRIME frame whose data[0] is
    // the descriptor, owned by its buf[0] (freed with the descriptor's fd by
    // `free_descriptor`); FFmpeg keeps a reference to `src` in the mapping. `dst` gets a
    // reference to the pool, as av_hwframe_map wants for mapping into it.
    unsafe {
        let mut src = ffmpeg::frame::Video::empty();
        let s = src.as_mut_ptr();
        let raw = Box::into_raw(desc);
        (*s).buf[0] = ffmpeg::ffi::av_buffer_create(
            raw.cast(),
            size_of::<AVDRMFrameDescriptor>(),
            Some(free_descriptor),
            ptr::null_mut(),
            0,
        );
        if (*s).buf[0].is_null() {
            free_descriptor(ptr::null_mut(), raw.cast());
            return Err("out of memory".into());
        }
        (*s).data[0] = raw.cast();
        (*s).format = ffmpeg::ffi::AVPixelFormat::AV_PIX_FMT_DRM_PRIME as i32;
        (*s).width = image.width() as i32;
        (*s).height = image.height() as i32;
        let mut dst = ffmpeg::frame::Video::empty();
        let d = dst.as_mut_ptr();
        (*d).format = ffmpeg::ffi::AVPixelFormat::AV_PIX_FMT_VAAPI as i32;
        (*d).hw_frames_ctx = ffmpeg::ffi::av_buffer_ref(frames.0);
        if (*d).hw_frames_ctx.is_null() {
            return Err("out of memory".into());
        }
        let ret = ffmpeg::ffi::av_hwframe_map(d, s, ffmpeg::ffi::AV_HWFRAME_MAP_READ as i32);
        if ret < 0 {
            return Err(format!(
                "importing the {}x{} {:?} buffer as a VA surface: {}",
                image.width(),
                image.height(),
                image.layout(),
                ffmpeg::Error::from(ret)
            ));
        }
        Ok(dst)
    }
}

/// The DRM PRIME layers of a buffer holding a picture of `layout` as the compositor packs it:
/// plane `p` from row `first_rows[p]`, every row `pitch` bytes, the first at byte `offset`.
/// NV12 is one layer of two planes; P010 a layer a plane (the form FFmpeg maps to VAAPI's
/// P010). Only those two: VAAPI encodes 4:2:0.
fn drm_layers(
    layout: YuvLayout,
    first_rows: &[u32],
    pitch: u32,
    offset: u32,
) -> Result<Vec<AVDRMLayerDescriptor>, String> {
    let plane = |p: usize| AVDRMPlaneDescriptor {
        object_index: 0,
        offset: (u64::from(offset) + u64::from(pitch) * u64::from(first_rows[p])) as isize,
        pitch: pitch as isize,
    };
    let unused = AVDRMPlaneDescriptor {
        object_index: 0,
        offset: 0,
        pitch: 0,
    };
    let layer = |format: u32, planes: &[AVDRMPlaneDescriptor]| {
        let mut all = [unused; 4];
        all[..planes.len()].copy_from_slice(planes);
        AVDRMLayerDescriptor {
            format,
            nb_planes: planes.len() as i32,
            planes: all,
        }
    };
    if first_rows.len() != 2 {
        return Err(format!(
            "{layout:?} has {} planes; VAAPI takes two-plane 4:2:0",
            first_rows.len()
        ));
    }
    match layout {
        YuvLayout::Nv12 => Ok(vec![layer(DRM_NV12, &[plane(0), plane(1)])]),
        YuvLayout::P010 => Ok(vec![
            layer(DRM_R16, &[plane(0)]),
            layer(DRM_RG1616, &[plane(1)]),
        ]),
        other => Err(format!("VAAPI takes NV12 or P010, not {other:?}")),
    }
}

/// Whether `vaapi` (the encoder's device) is the render node `frames_on` the compositor renders
/// on; else why its buffers are not handed to VAAPI.
pub(super) fn same_device(frames_on: &Path, vaapi: &Path) -> Result<(), String> {
    let device = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.rdev())
            .map_err(|err| format!("{}: {err}", p.display()))
    };
    if device(frames_on)? == device(vaapi)? {
        Ok(())
    } else {
        Err(format!(
            "the compositor renders on {} and VAAPI encodes on {}",
            frames_on.display(),
            vaapi.display()
        ))
    }
}

/// The compositor's buffers read back through VA surfaces, as `*_vaapi` reads them: a pool on a
/// device and an importer, kept from image to image as an encoder keeps them. A check of the
/// whole hand-off on a machine with VAAPI.
pub struct SurfaceReader {
    frames: HwBuffer,
    importer: VaapiImporter,
    layout: YuvLayout,
}

impl SurfaceReader {
    /// A pool of `width` x `height` surfaces of `layout` (NV12 or P010) on the VAAPI device
    /// `device`.
    pub fn new(
        device: &Path,
        layout: YuvLayout,
        width: u32,
        height: u32,
    ) -> Result<SurfaceReader, String> {
        let frames = vaapi_frames(device, layout_format(layout), width, height)
            .map_err(|err| format!("{err:#}"))?;
        Ok(SurfaceReader {
            frames,
            importer: VaapiImporter::new(),
            layout,
        })
    }

    /// Hands `image` over as the encoder gets it: the frame of its buffer's VA surface (imported
    /// the first time the buffer is seen), once the conversion is done. The hand-off alone,
    /// for timing it.
    pub fn hand_off(&mut self, image: &Arc<YuvImage>) -> Result<(), String> {
        self.surface(image).map(drop)
    }

    /// The planes of `image` as the encoder would read them: the surface of
    /// [`SurfaceReader::hand_off`] downloaded, each plane's rows one after another,
    /// [`YuvImage::row_bytes`] each.
    pub fn planes(&mut self, image: &Arc<YuvImage>) -> Result<Vec<Vec<u8>>, String> {
        let frame = self.surface(image)?;
        let down = self.frames.download(&frame)?;
        Ok(super::video::frame_planes(
            &down,
            self.layout,
            image.height(),
            image.row_bytes(),
        ))
    }

    fn surface(&mut self, image: &Arc<YuvImage>) -> Result<ffmpeg::frame::Video, String> {
        let mut frame = ffmpeg::frame::Video::empty();
        self.importer.fill(&self.frames, image, &mut frame)?;
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nv12_and_p010_buffers_are_described_plane_by_plane() {
        // 640x480 NV12: chroma from row 480, rows of 768 bytes, the buffer from byte 64.
        let nv12 = drm_layers(YuvLayout::Nv12, &[0, 480], 768, 64).unwrap();
        assert_eq!(nv12.len(), 1);
        assert_eq!(nv12[0].format, DRM_NV12);
        assert_eq!(nv12[0].nb_planes, 2);
        let at = |l: &AVDRMLayerDescriptor, p: usize| (l.planes[p].offset, l.planes[p].pitch);
        assert_eq!(at(&nv12[0], 0), (64, 768));
        assert_eq!(at(&nv12[0], 1), (64 + 768 * 480, 768));
        let p010 = drm_layers(YuvLayout::P010, &[0, 480], 1280, 0).unwrap();
        assert_eq!(
            p010.iter()
                .map(|l| (l.format, l.nb_planes))
                .collect::<Vec<_>>(),
            [(DRM_R16, 1), (DRM_RG1616, 1)]
        );
        assert_eq!(at(&p010[1], 0), (1280 * 480, 1280));
        // The codes are DRM's.
        assert_eq!(DRM_NV12, 0x3231_564e);
        assert_eq!(DRM_R16, 0x2036_3152);
        assert_eq!(DRM_RG1616, 0x3233_4752);
        // VAAPI encodes no 4:4:4.
        assert!(drm_layers(YuvLayout::Yuv444, &[0, 480, 960], 640, 0).is_err());
    }

    #[test]
    fn buffers_of_another_device_are_not_imported() {
        assert!(same_device(Path::new("/dev/null"), Path::new("/dev/null")).is_ok());
        let err = same_device(Path::new("/dev/null"), Path::new("/dev/zero")).unwrap_err();
        assert!(err.contains("/dev/zero"), "{err}");
        assert!(same_device(Path::new("/dev/null"), Path::new("/nonexistent")).is_err());
    }
}
