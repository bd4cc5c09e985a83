//! Framing: every message is `MAGIC` (4 bytes), its length (u32, big-endian) and
//! that many bytes of CBOR. The magic lets a reader resynchronise after garbage;
//! the length limit keeps one bad peer from exhausting memory.
//!
//! [`FrameDecoder`] is incremental (push bytes, pop frames) so the same code
//! serves the blocking server loop and the UI's non-blocking event loop.

use std::io::{self, Read, Write};

pub const MAGIC: [u8; 4] = *b"CELL";
const HEADER_LEN: usize = 8;
/// Largest payload either side accepts (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;

/// What can be wrong with the byte stream itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    /// Bytes that do not start with the frame magic; they are skipped up to the
    /// next magic.
    BadMagic,
    /// A frame announced more than [`MAX_FRAME`] bytes; its payload is skipped.
    TooLarge(u64),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::BadMagic => write!(
                f,
                "not a frame: expected the magic '{}' and a 4-byte length",
                String::from_utf8_lossy(&MAGIC)
            ),
            FrameError::TooLarge(n) => {
                write!(
                    f,
                    "frame of {n} bytes exceeds the limit of {MAX_FRAME} bytes"
                )
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Body(usize),
    /// Discarding an oversized payload: bytes still to drop.
    Skip(u64),
    /// Discarding garbage up to the next magic.
    Resync,
}

#[derive(Debug)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    state: State,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            buf: Vec::new(),
            state: State::Header,
        }
    }
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// True when the bytes so far end inside a frame: an end of stream now means
    /// the peer sent a truncated frame.
    pub fn mid_frame(&self) -> bool {
        match self.state {
            State::Header => !self.buf.is_empty(),
            State::Body(_) => true,
            State::Skip(_) | State::Resync => false,
        }
    }

    /// The next complete frame or stream error, or `None` until more bytes arrive.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        loop {
            match self.state {
                State::Header => {
                    let have = self.buf.len().min(MAGIC.len());
                    if self.buf[..have] != MAGIC[..have] {
                        self.state = State::Resync;
                        return Some(Err(FrameError::BadMagic));
                    }
                    if self.buf.len() < HEADER_LEN {
                        return None;
                    }
                    let len = u32::from_be_bytes(self.buf[4..8].try_into().unwrap()) as usize;
                    self.buf.drain(..HEADER_LEN);
                    if len > MAX_FRAME {
                        self.state = State::Skip(len as u64);
                        return Some(Err(FrameError::TooLarge(len as u64)));
                    }
                    self.state = State::Body(len);
                }
                State::Body(len) => {
                    if self.buf.len() < len {
                        return None;
                    }
                    let frame: Vec<u8> = self.buf.drain(..len).collect();
                    self.state = State::Header;
                    return Some(Ok(frame));
                }
                State::Skip(left) => {
                    let n = (self.buf.len() as u64).min(left);
                    self.buf.drain(..n as usize);
                    if n < left {
                        self.state = State::Skip(left - n);
                        return None;
                    }
                    self.state = State::Header;
                }
                State::Resync => match find(&self.buf, &MAGIC) {
                    Some(at) => {
                        self.buf.drain(..at);
                        self.state = State::Header;
                    }
                    None => {
                        // Keep a tail that could be the start of the next magic.
                        let keep = (MAGIC.len() - 1).min(self.buf.len());
                        let cut = self.buf.len() - keep;
                        self.buf.drain(..cut);
                        return None;
                    }
                },
            }
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Writes one frame (header and payload) and flushes.
pub fn write_frame(w: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    if payload.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            FrameError::TooLarge(payload.len() as u64).to_string(),
        ));
    }
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    w.write_all(&out)?;
    w.flush()
}

/// What one blocking read of the stream produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    Frame(Vec<u8>),
    Bad(FrameError),
    /// The stream ended; `truncated` if it ended inside a frame.
    End {
        truncated: bool,
    },
}

/// Blocking frame reader over any byte stream.
pub struct FrameReader<R> {
    inner: R,
    decoder: FrameDecoder,
}

impl<R: Read> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        FrameReader {
            inner,
            decoder: FrameDecoder::new(),
        }
    }

    pub fn read(&mut self) -> io::Result<Incoming> {
        let mut chunk = [0u8; 64 * 1024];
        loop {
            match self.decoder.next_frame() {
                Some(Ok(frame)) => return Ok(Incoming::Frame(frame)),
                Some(Err(e)) => return Ok(Incoming::Bad(e)),
                None => {}
            }
            let n = match self.inner.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Ok(Incoming::End {
                    truncated: self.decoder.mid_frame(),
                });
            }
            self.decoder.push(&chunk[..n]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        write_frame(&mut v, payload).unwrap();
        v
    }

    #[test]
    fn frames_split_at_every_byte_boundary_decode() {
        let mut stream = framed(b"hello");
        stream.extend(framed(b""));
        stream.extend(framed(b"world!"));
        for split in 0..stream.len() {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                d.push(part);
                while let Some(f) = d.next_frame() {
                    got.push(f.unwrap());
                }
            }
            assert_eq!(got, vec![b"hello".to_vec(), vec![], b"world!".to_vec()]);
            assert!(!d.mid_frame());
        }
    }

    #[test]
    fn garbage_is_reported_once_and_skipped_to_the_next_magic() {
        let mut d = FrameDecoder::new();
        d.push(b"garbage that is not CEL a frame");
        d.push(&framed(b"ok"));
        assert_eq!(d.next_frame(), Some(Err(FrameError::BadMagic)));
        assert_eq!(d.next_frame(), Some(Ok(b"ok".to_vec())));
        assert_eq!(d.next_frame(), None);
    }

    #[test]
    fn oversized_frames_are_refused_and_skipped() {
        let mut d = FrameDecoder::new();
        let big = MAX_FRAME as u32 + 1;
        d.push(&MAGIC);
        d.push(&big.to_be_bytes());
        assert_eq!(d.next_frame(), Some(Err(FrameError::TooLarge(big as u64))));
        let junk = vec![0u8; 1 << 20];
        let mut left = big as usize;
        while left > 0 {
            let n = left.min(junk.len());
            d.push(&junk[..n]);
            left -= n;
            assert_eq!(d.next_frame(), None);
        }
        d.push(&framed(b"after"));
        assert_eq!(d.next_frame(), Some(Ok(b"after".to_vec())));
        assert!(write_frame(&mut Vec::new(), &vec![0; MAX_FRAME + 1]).is_err());
    }

    #[test]
    fn a_stream_ending_inside_a_frame_is_truncated() {
        let whole = framed(b"abcdef");
        let mut r = FrameReader::new(&whole[..whole.len() - 2]);
        assert_eq!(r.read().unwrap(), Incoming::End { truncated: true });
        let mut r = FrameReader::new(&whole[..3]);
        assert_eq!(r.read().unwrap(), Incoming::End { truncated: true });
        let mut r = FrameReader::new(&whole[..]);
        assert_eq!(r.read().unwrap(), Incoming::Frame(b"abcdef".to_vec()));
        assert_eq!(r.read().unwrap(), Incoming::End { truncated: false });
    }
}
