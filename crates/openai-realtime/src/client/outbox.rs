//! What a [`SocketWebSocket`](super::SocketWebSocket) has queued for its socket: whole
//! WebSocket frames, in order, kept only until the socket took them.
//!
//! tungstenite copies every outgoing frame into one write buffer per connection that grows to
//! the largest batch ever queued and never shrinks: for a voice call, a media message and its
//! mark (~1.3 KB) keep ~2.4 KB allocated on the caller side for the whole call. The outbox
//! keeps a data frame as its header (formatted here, at most 14 bytes) beside the message's
//! own bytes; a client frame's payload is masked in place (RFC 6455 §5.3 requires a fresh key
//! per frame), so even then the message's bytes are not copied when it owns them (a `String`
//! made into a message). At write time the socket gets the pieces in order
//! ([`Outbox::gather`]; the socket gathers small batches into a buffer of its thread), and
//! what it took is dropped: nothing is kept between writes.
//!
//! Frames tungstenite writes itself (pongs, close frames) arrive as bytes
//! ([`Outbox::push_bytes`]) and take their place in the same order.

use std::collections::VecDeque;
use std::io::IoSlice;

use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

/// The longest frame header: 2 bytes, an 8-byte length, a 4-byte masking key.
const MAX_HEAD: usize = 14;

/// Slices handed to one vectored write, at most (two per frame).
pub(super) const MAX_SLICES: usize = 32;

/// One frame (or bytes tungstenite formatted): `head` then `body` on the wire.
#[derive(Debug)]
struct Chunk {
    head: [u8; MAX_HEAD],
    head_len: u8,
    body: Bytes,
}

impl Chunk {
    fn head(&self) -> &[u8] {
        &self.head[..usize::from(self.head_len)]
    }

    fn len(&self) -> usize {
        usize::from(self.head_len) + self.body.len()
    }
}

/// Frames on their way to the socket; see the [module docs](self).
#[derive(Debug, Default)]
pub(super) struct Outbox {
    chunks: VecDeque<Chunk>,
    /// Bytes of the front chunk the socket already took.
    front_written: usize,
    /// Bytes queued and not yet taken.
    len: usize,
}

impl Outbox {
    /// Bytes queued and not yet written.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Nothing is waiting.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues one final data frame carrying `payload`; masked with `mask` (a client's frame).
    pub(super) fn push_frame(&mut self, opcode: Data, payload: Bytes, mask: Option<[u8; 4]>) {
        let header = FrameHeader {
            opcode: OpCode::Data(opcode),
            mask,
            ..FrameHeader::default()
        };
        let mut head = [0u8; MAX_HEAD];
        let free = {
            let mut out = &mut head[..];
            header
                .format(payload.len() as u64, &mut out)
                .expect("a frame header fits in 14 bytes");
            out.len()
        };
        let body = match mask {
            None => payload,
            Some(key) => {
                // Owned bytes (a `String` made into a message) are masked where they are.
                let mut owned = Vec::from(payload);
                apply_mask(&mut owned, key);
                Bytes::from(owned)
            }
        };
        self.push(Chunk {
            head,
            head_len: (MAX_HEAD - free) as u8,
            body,
        });
    }

    /// Queues bytes formatted elsewhere (tungstenite's control frames), copied.
    pub(super) fn push_bytes(&mut self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        self.push(Chunk {
            head: [0; MAX_HEAD],
            head_len: 0,
            body: Bytes::copy_from_slice(bytes),
        });
    }

    fn push(&mut self, chunk: Chunk) {
        self.len += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// Fills `slices` with what is queued, oldest first, from where the socket stopped;
    /// returns how many it filled (0 when nothing is queued).
    pub(super) fn gather<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        let mut n = 0;
        let mut skip = self.front_written;
        for chunk in &self.chunks {
            for part in [chunk.head(), &chunk.body[..]] {
                if skip >= part.len() {
                    skip -= part.len();
                    continue;
                }
                if n == MAX_SLICES {
                    return n;
                }
                slices[n] = IoSlice::new(&part[skip..]);
                skip = 0;
                n += 1;
            }
        }
        n
    }

    /// The socket took `n` more bytes: what is whole is dropped.
    pub(super) fn advance(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        self.len -= n;
        let mut taken = self.front_written + n;
        while let Some(front) = self.chunks.front() {
            if taken < front.len() {
                break;
            }
            taken -= front.len();
            self.chunks.pop_front();
        }
        self.front_written = taken;
    }
}

/// XORs `buf` with the 4-byte masking `key` (RFC 6455 §5.3), eight bytes at a time.
fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = buf.chunks_exact_mut(8);
    for word in &mut words {
        let value = u64::from_ne_bytes((&*word).try_into().expect("eight bytes")) ^ wide;
        word.copy_from_slice(&value.to_ne_bytes());
    }
    for (i, byte) in words.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    /// Everything queued, as the socket would receive it.
    fn drain(outbox: &mut Outbox) -> Vec<u8> {
        let mut wire = Vec::new();
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = outbox.gather(&mut slices);
            if n == 0 {
                break;
            }
            let taken: usize = slices[..n].iter().map(|s| s.len()).sum();
            for slice in &slices[..n] {
                wire.extend_from_slice(slice);
            }
            outbox.advance(taken);
        }
        assert!(outbox.is_empty());
        wire
    }

    /// tungstenite's own encoding of the same frame.
    fn tungstenite_frame(opcode: Data, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut frame = Frame::message(Bytes::copy_from_slice(payload), OpCode::Data(opcode), true);
        frame.header_mut().mask = mask;
        let mut wire = Vec::new();
        frame.format(&mut wire).unwrap();
        wire
    }

    #[test]
    fn frames_are_byte_for_byte_tungstenites() {
        // Lengths around both length-encoding boundaries, masked and not.
        for len in [
            0usize, 1, 7, 8, 9, 125, 126, 127, 1_000, 65_535, 65_536, 70_001,
        ] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            for mask in [None, Some([0x12, 0x34, 0x56, 0x78])] {
                for opcode in [Data::Text, Data::Binary] {
                    let mut outbox = Outbox::default();
                    outbox.push_frame(opcode, Bytes::from(payload.clone()), mask);
                    assert_eq!(
                        drain(&mut outbox),
                        tungstenite_frame(opcode, &payload, mask),
                        "{len} bytes, mask {mask:?}, {opcode:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_unmasked_payload_is_not_copied() {
        let payload = Bytes::from(vec![1u8; 512]);
        let mut outbox = Outbox::default();
        outbox.push_frame(Data::Binary, payload.clone(), None);
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(outbox.gather(&mut slices), 2);
        assert_eq!(slices[1].as_ptr(), payload.as_ptr());
    }

    #[test]
    fn partial_writes_resume_where_the_socket_stopped() {
        let mut outbox = Outbox::default();
        let mut expected = Vec::new();
        for i in 0..50u8 {
            let payload = vec![i; usize::from(i) * 13];
            outbox.push_frame(Data::Binary, Bytes::from(payload.clone()), None);
            expected.extend(tungstenite_frame(Data::Binary, &payload, None));
            if i % 7 == 0 {
                outbox.push_bytes(&[0x8a, 0x01, i]);
                expected.extend([0x8a, 0x01, i]);
            }
        }
        assert_eq!(outbox.len(), expected.len());
        // A socket that takes 1, 2, 3, … bytes per write, across chunk and slice boundaries.
        let mut wire = Vec::new();
        let mut step = 1;
        loop {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = outbox.gather(&mut slices);
            if n == 0 {
                break;
            }
            let mut want = step;
            for slice in &slices[..n] {
                let take = want.min(slice.len());
                wire.extend_from_slice(&slice[..take]);
                want -= take;
                if want == 0 {
                    break;
                }
            }
            outbox.advance(step - want);
            step = step % 97 + 1;
        }
        assert_eq!(wire, expected);
        assert_eq!(outbox.len(), 0);
    }

    #[test]
    fn more_frames_than_one_write_takes_are_gathered_in_turns() {
        let mut outbox = Outbox::default();
        for i in 0..40u8 {
            outbox.push_frame(Data::Text, Bytes::from(vec![b'a' + i % 26; 3]), None);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(outbox.gather(&mut slices), MAX_SLICES);
        let wire = drain(&mut outbox);
        assert_eq!(wire.len(), 40 * 5);
    }

    #[test]
    fn masking_matches_bytewise_xor() {
        for len in 0..40 {
            let original: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let key = [0xa1, 0x02, 0xff, 0x3c];
            let mut fast = original.clone();
            apply_mask(&mut fast, key);
            let slow: Vec<u8> = original
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(fast, slow);
        }
    }
}
