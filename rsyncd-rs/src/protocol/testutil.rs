//! Helpers for tests that decode the captured sessions in `testdata/captures/`.

/// The payloads of the MSG_DATA frames of a multiplexed stream, starting at the frame
/// header at `first_frame`, concatenated (other message codes are skipped).
pub fn deframe(stream: &[u8], first_frame: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = first_frame;
    while pos + 4 <= stream.len() {
        let word = u32::from_le_bytes([
            stream[pos],
            stream[pos + 1],
            stream[pos + 2],
            stream[pos + 3],
        ]);
        let len = (word & 0x00ff_ffff) as usize;
        let tag = (word >> 24) as u8;
        let end = (pos + 4 + len).min(stream.len());
        if tag == 7 {
            out.extend_from_slice(&stream[pos + 4..end]);
        }
        pos = end;
    }
    out
}
