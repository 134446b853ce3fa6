//! [`Cursor`]: reads a fuzzer's bytes as a sequence of choices.

/// Reads choices from fuzzer bytes, so every target takes plain bytes (what libFuzzer mutates
/// and what a corpus file holds) and still builds structured cases from them. When the input
/// runs out, the choices go on from a generator seeded by the whole input: bolero's random
/// engine gives at most 64 bytes, and a short input still makes a long case. A given input
/// always makes the same case.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    /// xorshift64* state for the choices past the end (never 0).
    state: u64,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        // FNV-1a of the input (and its length), so every input continues its own way.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in bytes.iter().chain(&(bytes.len() as u64).to_le_bytes()) {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        Cursor { bytes, at: 0, state: hash | 1 }
    }

    pub fn u8(&mut self) -> u8 {
        let byte = match self.bytes.get(self.at) {
            Some(&byte) => byte,
            None => {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            }
        };
        self.at = self.at.saturating_add(1);
        byte
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        assert!(n > 0, "below(0) has no answer");
        let raw = if n <= 256 { usize::from(self.u8()) } else { self.u32() as usize };
        raw % n
    }

    /// True about once in `n` reads.
    pub fn one_in(&mut self, n: usize) -> bool {
        n > 0 && self.below(n) == n - 1
    }

    pub fn pick<'t, T>(&mut self, items: &'t [T]) -> &'t T {
        &items[self.below(items.len())]
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }

    /// Between 0 and `max` bytes, the number chosen first.
    pub fn bytes_up_to(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        self.bytes(n)
    }

    /// The input's bytes not read yet (none from the generator).
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.at.min(self.bytes.len());
        self.at = self.bytes.len();
        &self.bytes[start..]
    }
}

/// What [`damage`] did to a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// Cut at this length.
    Cut(usize),
    /// Changed bytes in place from this offset on (the length is unchanged).
    Overwrite(usize),
    /// Appended bytes.
    Append,
}

/// One to four edits of `bytes`, chosen by `c`: flip a bit, set a byte, zero or copy a run, cut
/// the end, append bytes. A script of zeros flips the lowest bit of byte 0.
pub fn damage(bytes: &mut Vec<u8>, c: &mut Cursor) -> Vec<Edit> {
    let mut edits = Vec::new();
    for _ in 0..=c.below(4) {
        let len = bytes.len();
        let at = if len == 0 { 0 } else { c.u32() as usize % len };
        match c.below(6) {
            _ if len == 0 => {
                bytes.extend_from_slice(&c.bytes_up_to(32));
                edits.push(Edit::Append);
            }
            0 => {
                bytes[at] ^= 1 << c.below(8);
                edits.push(Edit::Overwrite(at));
            }
            1 => {
                bytes[at] = c.u8();
                edits.push(Edit::Overwrite(at));
            }
            2 => {
                let end = (at + 1 + c.below(64)).min(len);
                bytes[at..end].fill(0);
                edits.push(Edit::Overwrite(at));
            }
            3 => {
                let from = c.u32() as usize % len;
                let n = (1 + c.below(64)).min(len - from).min(len - at);
                bytes.copy_within(from..from + n, at);
                edits.push(Edit::Overwrite(at));
            }
            4 => {
                bytes.truncate(at);
                edits.push(Edit::Cut(at));
            }
            _ => {
                bytes.extend_from_slice(&c.bytes_up_to(64));
                edits.push(Edit::Append);
            }
        }
    }
    edits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_first_then_its_own_continuation() {
        let mut c = Cursor::new(&[7, 1, 2]);
        assert_eq!(c.u8(), 7);
        assert_eq!(c.u16(), 0x0201);
        let past: Vec<u8> = c.bytes(64);
        assert!(past.iter().any(|&b| b != 0), "the continuation is not all zeros");
        assert_eq!(Cursor::new(&[7, 1, 2]).bytes(67)[3..], past[..], "the same input continues the same way");
        assert_ne!(Cursor::new(&[7, 1, 3]).bytes(67)[3..], past[..], "another input continues another way");
        assert!(c.rest().is_empty());
    }

    #[test]
    fn below_stays_in_range() {
        let mut c = Cursor::new(&[255; 8]);
        for n in [1, 2, 3, 7, 255, 256, 1000] {
            assert!(c.below(n) < n);
        }
    }

    #[test]
    fn damage_changes_the_buffer() {
        let original: Vec<u8> = (0..100).collect();
        let mut bytes = original.clone();
        assert_eq!(damage(&mut bytes, &mut Cursor::new(&[0; 16])), vec![Edit::Overwrite(0)]);
        assert_eq!(bytes[0], 1);
        let mut bytes = original.clone();
        // One edit, at offset 5, a cut.
        assert_eq!(damage(&mut bytes, &mut Cursor::new(&[0, 5, 0, 0, 0, 4])), vec![Edit::Cut(5)]);
        assert_eq!(bytes, original[..5]);
    }
}
