//! What the fuzz targets share: a reader that turns the fuzzer's bytes into choices.

/// Takes values from the front of the fuzzer's input; once it runs out, every value is zero.
pub struct Choices<'a> {
    rest: &'a [u8],
}

impl<'a> Choices<'a> {
    /// Choices taken from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Choices { rest: data }
    }

    /// The next byte (0 when none is left).
    pub fn u8(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Whether the next byte is odd.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// Up to `n` of the next bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (take, rest) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = rest;
        take
    }

    /// A length-prefixed (one byte) slice.
    pub fn short_bytes(&mut self) -> &'a [u8] {
        let n = self.u8() as usize;
        self.bytes(n)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}
