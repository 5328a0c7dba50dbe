//! Files shipped inside the binary.

/// The box art served by `/appasset` (a PNG, as clients expect).
pub const BOX_ART: &[u8] = include_bytes!("../../assets/boxart.png");
