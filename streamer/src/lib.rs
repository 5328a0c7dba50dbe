//! (to be written)
pub mod encode;
