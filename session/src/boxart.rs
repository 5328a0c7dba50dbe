//! Box art uploaded through the console: a PNG is kept as it is (after checking it decodes), a
//! JPEG is turned into a PNG, since GameStream clients ask for PNGs.

use std::io::Cursor;

/// Largest upload accepted.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;
/// Largest width or height accepted.
pub const MAX_SIDE: u32 = 4096;

/// Why an upload is no box art.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BoxArtError {
    /// Neither PNG nor JPEG.
    #[error("box art must be a PNG or JPEG image")]
    NotAnImage,
    /// It says it is one but does not decode.
    #[error("the image cannot be read: {0}")]
    Broken(String),
    /// Too many pixels.
    #[error("the image is {0}x{1}; allowed: at most {MAX_SIDE} pixels each way")]
    TooLarge(u32, u32),
}

/// The PNG to store for `bytes`.
pub fn to_png(bytes: &[u8]) -> Result<Vec<u8>, BoxArtError> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let decoder = png::Decoder::new(Cursor::new(bytes));
        let mut reader = decoder
            .read_info()
            .map_err(|e| BoxArtError::Broken(e.to_string()))?;
        let (w, h) = (reader.info().width, reader.info().height);
        check_size(w, h)?;
        let mut pixels = vec![0; reader.output_buffer_size()];
        reader
            .next_frame(&mut pixels)
            .map_err(|e| BoxArtError::Broken(e.to_string()))?;
        return Ok(bytes.to_vec());
    }
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
        decoder
            .read_info()
            .map_err(|e| BoxArtError::Broken(e.to_string()))?;
        let info = decoder
            .info()
            .ok_or_else(|| BoxArtError::Broken("no image header".into()))?;
        check_size(u32::from(info.width), u32::from(info.height))?;
        let pixels = decoder
            .decode()
            .map_err(|e| BoxArtError::Broken(e.to_string()))?;
        let color = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => png::ColorType::Rgb,
            jpeg_decoder::PixelFormat::L8 => png::ColorType::Grayscale,
            other => {
                return Err(BoxArtError::Broken(format!(
                    "unsupported JPEG pixel format {other:?}"
                )))
            }
        };
        let mut out = Vec::new();
        let mut encoder =
            png::Encoder::new(&mut out, u32::from(info.width), u32::from(info.height));
        encoder.set_color(color);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| BoxArtError::Broken(e.to_string()))?;
        writer
            .write_image_data(&pixels)
            .map_err(|e| BoxArtError::Broken(e.to_string()))?;
        writer
            .finish()
            .map_err(|e| BoxArtError::Broken(e.to_string()))?;
        return Ok(out);
    }
    Err(BoxArtError::NotAnImage)
}

fn check_size(w: u32, h: u32) -> Result<(), BoxArtError> {
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(BoxArtError::TooLarge(w, h));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(w: u32, h: u32) -> Vec<u8> {
        let mut out = Vec::new();
        let mut e = png::Encoder::new(&mut out, w, h);
        e.set_color(png::ColorType::Rgb);
        e.set_depth(png::BitDepth::Eight);
        let mut wr = e.write_header().unwrap();
        wr.write_image_data(&vec![200; (w * h * 3) as usize])
            .unwrap();
        wr.finish().unwrap();
        out
    }

    #[test]
    fn pngs_pass_and_other_things_do_not() {
        let png = png_of(30, 40);
        assert_eq!(to_png(&png).unwrap(), png);
        assert_eq!(to_png(b"GIF89a...."), Err(BoxArtError::NotAnImage));
        assert_eq!(to_png(b""), Err(BoxArtError::NotAnImage));
        let mut truncated = png.clone();
        truncated.truncate(png.len() / 2);
        assert!(matches!(to_png(&truncated), Err(BoxArtError::Broken(_))));
        assert!(matches!(
            to_png(b"\xff\xd8\xff\xe0garbage"),
            Err(BoxArtError::Broken(_))
        ));
        assert_eq!(
            to_png(&png_of(5000, 1)),
            Err(BoxArtError::TooLarge(5000, 1))
        );
    }
}
