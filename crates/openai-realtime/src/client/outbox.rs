//! What a [`SocketWebSocket`](super::SocketWebSocket) has queued for its socket: whole
//! WebSocket frames, in order, kept only until the socket took them.
//!
//! tungstenite copies every outgoing frame into one write buffer per connection that grows to
//! the largest batch ever queued and never shrinks: for a voice call, a media message and its
//! mark (~1.3 KB) keep ~2.4 KB allocated on the caller side for the whole call. The outbox
//! keeps a data frame as its header (formatted here, at most 14 bytes) beside the message's
//! own bytes. At write time the socket gets them in order: copied into a buffer of the thread
//! ([`Outbox::copy_front`], which also masks a client frame's payload as it copies: RFC 6455
//! §5.3 requires a fresh key per frame), or, for a large batch of unmasked frames, as slices
//! for one vectored write ([`Outbox::gather`]). What the socket took is dropped: nothing is
//! kept between writes.
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

/// One frame (or bytes tungstenite formatted): `head` then `body` on the wire, the body
/// masked with `mask` on its way.
#[derive(Debug)]
struct Chunk {
    head: [u8; MAX_HEAD],
    head_len: u8,
    body: Bytes,
    mask: Option<[u8; 4]>,
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
    /// Chunks queued whose body is still to be masked.
    masked: usize,
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

    /// Some queued frame is to be masked: only [`copy_front`](Self::copy_front) writes it.
    pub(super) fn has_masked(&self) -> bool {
        self.masked > 0
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
        self.masked += usize::from(mask.is_some());
        self.push(Chunk {
            head,
            head_len: (MAX_HEAD - free) as u8,
            body: payload,
            mask,
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
            mask: None,
        });
    }

    fn push(&mut self, chunk: Chunk) {
        self.len += chunk.len();
        self.chunks.push_back(chunk);
    }

    /// What the socket has not taken yet, oldest first, in pieces (a frame's head, then its
    /// body): each piece's unwritten bytes, the body's masking key, and how far into the piece
    /// they start (the masking key's phase).
    fn unwritten(&self) -> impl Iterator<Item = (&[u8], Option<[u8; 4]>, usize)> {
        let mut skip = self.front_written;
        self.chunks
            .iter()
            .flat_map(|chunk| [(chunk.head(), None), (&chunk.body[..], chunk.mask)])
            .filter_map(move |(piece, mask)| {
                if skip >= piece.len() {
                    skip -= piece.len();
                    return None;
                }
                let from = std::mem::take(&mut skip);
                Some((&piece[from..], mask, from))
            })
    }

    /// Fills `slices` with what is queued, oldest first, from where the socket stopped;
    /// returns how many it filled (0 when nothing is queued). Only while nothing is to be
    /// masked ([`has_masked`](Self::has_masked)).
    pub(super) fn gather<'a>(&'a self, slices: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        debug_assert!(
            !self.has_masked(),
            "masked frames are written with copy_front"
        );
        let mut n = 0;
        for (slot, (bytes, _, _)) in slices.iter_mut().zip(self.unwritten()) {
            *slot = IoSlice::new(bytes);
            n += 1;
        }
        n
    }

    /// Replaces `out` with up to `max` bytes of what is queued, oldest first, from where the
    /// socket stopped, as they go on the wire (client payloads masked).
    pub(super) fn copy_front(&self, out: &mut Vec<u8>, max: usize) {
        out.clear();
        for (bytes, mask, offset) in self.unwritten() {
            let room = max - out.len();
            if room == 0 {
                return;
            }
            let start = out.len();
            out.extend_from_slice(&bytes[..bytes.len().min(room)]);
            if let Some(key) = mask {
                apply_mask(&mut out[start..], key, offset);
            }
        }
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
            if front.mask.is_some() {
                self.masked -= 1;
            }
            self.chunks.pop_front();
        }
        self.front_written = taken;
    }
}

/// XORs `buf`, which starts `offset` bytes into a payload, with the payload's 4-byte masking
/// `key` (RFC 6455 §5.3), eight bytes at a time.
fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key: [u8; 4] = std::array::from_fn(|i| key[(i + offset) % 4]);
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

    /// Everything queued, as a socket taking `take(i)` bytes at its `i`-th write would receive
    /// it through the vectored writer.
    fn drain_gathered(outbox: &mut Outbox, take: impl Fn(usize) -> usize) -> Vec<u8> {
        let mut wire = Vec::new();
        for i in 0.. {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = outbox.gather(&mut slices);
            if n == 0 {
                break;
            }
            let mut want = take(i);
            let mut taken = 0;
            for slice in &slices[..n] {
                let k = want.min(slice.len());
                wire.extend_from_slice(&slice[..k]);
                taken += k;
                want -= k;
                if want == 0 {
                    break;
                }
            }
            outbox.advance(taken);
        }
        assert!(outbox.is_empty());
        wire
    }

    /// The same through the copying writer, `max` bytes copied per write.
    fn drain_copied(outbox: &mut Outbox, max: usize, take: impl Fn(usize) -> usize) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut buf = Vec::new();
        for i in 0.. {
            outbox.copy_front(&mut buf, max);
            if buf.is_empty() {
                break;
            }
            let k = take(i).min(buf.len());
            wire.extend_from_slice(&buf[..k]);
            outbox.advance(k);
        }
        assert!(outbox.is_empty());
        assert!(!outbox.has_masked());
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
                    let expected = tungstenite_frame(opcode, &payload, mask);
                    let mut outbox = Outbox::default();
                    outbox.push_frame(opcode, Bytes::from(payload.clone()), mask);
                    let copied = drain_copied(&mut outbox, 16 * 1024, |_| usize::MAX);
                    assert_eq!(copied, expected, "{len} bytes, mask {mask:?}, {opcode:?}");
                    if mask.is_none() {
                        outbox.push_frame(opcode, Bytes::from(payload.clone()), mask);
                        let gathered = drain_gathered(&mut outbox, |_| usize::MAX);
                        assert_eq!(gathered, expected, "{len} bytes, {opcode:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn an_unmasked_payload_is_not_copied_for_a_vectored_write() {
        let payload = Bytes::from(vec![1u8; 512]);
        let mut outbox = Outbox::default();
        outbox.push_frame(Data::Binary, payload.clone(), None);
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(outbox.gather(&mut slices), 2);
        assert_eq!(slices[1].as_ptr(), payload.as_ptr());
    }

    /// Fifty frames of growing size, control bytes between some, masked or not.
    fn queue_mixed(outbox: &mut Outbox, masked: bool) -> Vec<u8> {
        let mut expected = Vec::new();
        for i in 0..50u8 {
            let payload = vec![i; usize::from(i) * 13];
            let mask = masked.then_some([i, 0x5a, i.wrapping_mul(3), 0xc3]);
            outbox.push_frame(Data::Binary, Bytes::from(payload.clone()), mask);
            expected.extend(tungstenite_frame(Data::Binary, &payload, mask));
            if i % 7 == 0 {
                outbox.push_bytes(&[0x8a, 0x01, i]);
                expected.extend([0x8a, 0x01, i]);
            }
        }
        assert_eq!(outbox.len(), expected.len());
        expected
    }

    #[test]
    fn partial_writes_resume_where_the_socket_stopped() {
        // A socket that takes 1, 2, 3, … 97, 1, … bytes per write, across chunk, slice and
        // masking-key boundaries.
        let step = |i: usize| i % 97 + 1;
        let mut outbox = Outbox::default();
        let expected = queue_mixed(&mut outbox, false);
        assert_eq!(drain_gathered(&mut outbox, step), expected);
        for masked in [false, true] {
            let expected = queue_mixed(&mut outbox, masked);
            assert_eq!(drain_copied(&mut outbox, 16 * 1024, step), expected);
            // Copies smaller than a frame, and a socket that takes all of each.
            let expected = queue_mixed(&mut outbox, masked);
            assert_eq!(drain_copied(&mut outbox, 61, |_| usize::MAX), expected);
        }
    }

    #[test]
    fn more_frames_than_one_write_takes_are_gathered_in_turns() {
        let mut outbox = Outbox::default();
        for i in 0..40u8 {
            outbox.push_frame(Data::Text, Bytes::from(vec![b'a' + i % 26; 3]), None);
        }
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        assert_eq!(outbox.gather(&mut slices), MAX_SLICES);
        let wire = drain_gathered(&mut outbox, |_| usize::MAX);
        assert_eq!(wire.len(), 40 * 5);
    }

    proptest::proptest! {
        /// Any frames (any sizes, masked or not, control bytes between), written through either
        /// writer by a socket taking any number of bytes each time, arrive as tungstenite would
        /// have sent them, in order, nothing left queued.
        #[test]
        fn any_frames_any_writes_arrive_as_tungstenite_sends_them(
            frames in proptest::collection::vec(
                (0usize..3000, proptest::option::of(proptest::array::uniform4(0u8..)), proptest::bool::ANY),
                1..40,
            ),
            takes in proptest::collection::vec(1usize..5000, 1..50),
            copy_max in 1usize..20_000,
            copy_unmasked in proptest::bool::ANY,
        ) {
            let masked = frames.iter().any(|(_, mask, _)| mask.is_some());
            let mut outbox = Outbox::default();
            let mut expected = Vec::new();
            for (i, (len, mask, control)) in frames.iter().enumerate() {
                let payload: Vec<u8> = (0..*len).map(|j| (i * 7 + j) as u8).collect();
                outbox.push_frame(Data::Binary, Bytes::from(payload.clone()), *mask);
                expected.extend(tungstenite_frame(Data::Binary, &payload, *mask));
                if *control {
                    outbox.push_bytes(&[0x89, 0x01, i as u8]);
                    expected.extend([0x89, 0x01, i as u8]);
                }
            }
            let take = |i: usize| takes[i % takes.len()];
            let wire = if masked || copy_unmasked {
                drain_copied(&mut outbox, copy_max, take)
            } else {
                drain_gathered(&mut outbox, take)
            };
            proptest::prop_assert_eq!(wire, expected);
        }
    }

    #[test]
    fn masking_from_any_offset_matches_bytewise_xor() {
        let key = [0xa1, 0x02, 0xff, 0x3c];
        for offset in 0..8 {
            for len in 0..40 {
                let original: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let mut fast = original.clone();
                apply_mask(&mut fast, key, offset);
                let slow: Vec<u8> = original
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[(i + offset) % 4])
                    .collect();
                assert_eq!(fast, slow, "offset {offset}, {len} bytes");
            }
        }
    }
}
