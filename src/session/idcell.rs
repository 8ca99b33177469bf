//! A copy of the current id that a reader can copy out with plain loads: a
//! sequence lock over atomic words. `ArcSwap` costs a thread-local lookup and
//! two atomic read-modify-writes per read; this costs a few loads. Ids longer
//! than the cell leave it empty and readers take the `ArcSwap` path.

use std::sync::atomic::{fence, AtomicU64, AtomicUsize, Ordering};

const WORDS: usize = 32;
/// The longest id kept here (BILL's ids are far shorter).
pub const CAPACITY: usize = WORDS * 8;
/// Reads that collide with a write before the caller is sent to the slow path.
const READ_ATTEMPTS: u32 = 4;

pub(super) struct IdCell {
    /// Odd while a writer is changing the words.
    seq: AtomicU64,
    /// 0: no id here (closed, or too long for the cell).
    len: AtomicUsize,
    words: [AtomicU64; WORDS],
}

impl IdCell {
    pub(super) const fn new() -> IdCell {
        IdCell { seq: AtomicU64::new(0), len: AtomicUsize::new(0), words: [const { AtomicU64::new(0) }; WORDS] }
    }

    /// Replaces the id (None, or one too long, empties the cell). Every word
    /// the old id used is overwritten, so no copy of it stays behind.
    pub(super) fn set(&self, id: Option<&[u8]>) {
        // Writers exclude each other by taking the sequence from even to odd.
        let mut s = self.seq.load(Ordering::Relaxed);
        loop {
            if s & 1 == 1 {
                std::hint::spin_loop();
                s = self.seq.load(Ordering::Relaxed);
                continue;
            }
            match self.seq.compare_exchange_weak(s, s + 1, Ordering::Acquire, Ordering::Relaxed) {
                Ok(_) => break,
                Err(now) => s = now,
            }
        }
        fence(Ordering::Release);
        let bytes = id.filter(|b| b.len() <= CAPACITY).unwrap_or(&[]);
        self.len.store(bytes.len(), Ordering::Relaxed);
        let mut chunks = bytes.chunks(8);
        for w in &self.words {
            // Packed little-endian in a register: no byte array of the id on
            // this thread's stack.
            let word = chunks.next().map_or(0, |c| c.iter().rev().fold(0u64, |acc, &b| acc << 8 | u64::from(b)));
            w.store(word, Ordering::Relaxed);
        }
        self.seq.store(s + 2, Ordering::Release);
    }

    /// Copies the id and a NUL into `buf` (`cap` bytes; when there is room,
    /// the rest of the NUL's 8-byte word is zeroed too). `None` when the cell
    /// is empty, the id does not fit, or writes kept colliding with the read;
    /// the caller then takes the slow path, which says why. Nothing is
    /// written when the id does not fit; after colliding reads the bytes
    /// written are zeroed again.
    ///
    /// # Safety
    /// `buf` must be valid for `cap` bytes of writes.
    #[inline]
    pub(super) unsafe fn copy_to(&self, buf: *mut u8, cap: usize) -> Option<usize> {
        let mut written = 0;
        for _ in 0..READ_ATTEMPTS {
            let s1 = self.seq.load(Ordering::Acquire);
            if s1 & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let len = self.len.load(Ordering::Relaxed);
            if len == 0 || len >= cap || len > CAPACITY {
                break;
            }
            // Straight from the atomic words into the caller's buffer: no
            // copy of the id on our stack, and atomic loads are never merged
            // into a call to memcpy. A torn read is overwritten by the retry.
            //
            // Whole words through the one that holds the NUL when there is
            // room: `set` leaves zeros after the id, so that word ends the
            // text. Otherwise the whole words of the id, its tail, a NUL.
            let with_nul = len / 8 + 1;
            let whole = with_nul * 8 <= cap && with_nul <= WORDS;
            let n = if whole { with_nul } else { len / 8 };
            for (i, w) in self.words[..n].iter().enumerate() {
                // SAFETY: i * 8 + 8 <= n * 8, which is at most cap (whole) or len < cap.
                unsafe { buf.add(i * 8).cast::<u64>().write_unaligned(w.load(Ordering::Relaxed).to_le()) };
            }
            if whole {
                written = n * 8;
            } else {
                let tail = len - n * 8;
                if tail > 0 {
                    // SAFETY: n * 8 + tail = len < cap.
                    unsafe { write_tail(buf.add(n * 8), self.words[n].load(Ordering::Relaxed), tail) };
                }
                // SAFETY: len < cap.
                unsafe { *buf.add(len) = 0 };
                written = len + 1;
            }
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == s1 {
                return Some(len);
            }
        }
        if written > 0 {
            // SAFETY: the first `written` bytes were written above.
            unsafe { std::ptr::write_bytes(buf, 0, written) };
        }
        None
    }
}

/// Writes the first `n` (1 to 7) bytes of `word` (little-endian, as `set`
/// packs them) to `dst` in at most three stores. Shifts, not a byte array:
/// an array would put the id's tail on the stack.
///
/// # Safety
/// `dst` must be valid for `n` bytes of writes.
#[inline]
unsafe fn write_tail(dst: *mut u8, mut word: u64, n: usize) {
    let mut at = 0;
    // SAFETY (all three): at + width <= n, and dst is valid for n bytes.
    if n & 4 != 0 {
        unsafe { dst.cast::<u32>().write_unaligned((word as u32).to_le()) };
        word >>= 32;
        at = 4;
    }
    if n & 2 != 0 {
        unsafe { dst.add(at).cast::<u16>().write_unaligned((word as u16).to_le()) };
        word >>= 16;
        at += 2;
    }
    if n & 1 != 0 {
        unsafe { *dst.add(at) = word as u8 };
    }
}

impl Drop for IdCell {
    fn drop(&mut self) {
        self.set(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn read(c: &IdCell, cap: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0xAAu8; cap];
        // SAFETY: buf has cap bytes.
        let n = unsafe { c.copy_to(buf.as_mut_ptr(), cap) }?;
        assert_eq!(buf[n], 0, "NUL-terminated");
        buf.truncate(n);
        Some(buf)
    }

    #[test]
    fn copies_fits_and_refuses() {
        let c = IdCell::new();
        assert_eq!(read(&c, 64), None, "empty");
        c.set(Some(b"abcdefghijk"));
        assert_eq!(read(&c, 64).unwrap(), b"abcdefghijk");
        assert_eq!(read(&c, 11), None, "no room for the NUL");
        let mut untouched = [0xAAu8; 11];
        // SAFETY: 11 bytes.
        assert_eq!(unsafe { c.copy_to(untouched.as_mut_ptr(), 11) }, None);
        assert_eq!(untouched, [0xAA; 11], "nothing written when the id does not fit");
        assert_eq!(read(&c, 12).unwrap(), b"abcdefghijk");
        c.set(Some(b"xy"));
        assert_eq!(read(&c, 64).unwrap(), b"xy");
        assert!(c.words[1].load(Ordering::Relaxed) == 0, "the old id's tail is wiped");
        c.set(Some(&[b'z'; CAPACITY + 1]));
        assert_eq!(read(&c, 4096), None, "too long for the cell");
        c.set(Some(&[b'z'; CAPACITY]));
        assert_eq!(read(&c, 4096).unwrap().len(), CAPACITY);
        for len in [7, 8, 9, CAPACITY - 1] {
            let id = vec![b'q'; len];
            c.set(Some(&id));
            // Room for whole words, and only just room for the id and its NUL.
            assert_eq!(read(&c, 4096).unwrap(), id);
            assert_eq!(read(&c, len + 1).unwrap(), id);
        }
        c.set(None);
        assert_eq!(read(&c, 64), None);
        assert!(c.words.iter().all(|w| w.load(Ordering::Relaxed) == 0));
    }

    #[test]
    fn readers_never_see_a_torn_id() {
        let c = Arc::new(IdCell::new());
        let ids: Vec<Vec<u8>> = (0..4u8).map(|i| vec![b'a' + i; 20 + 17 * i as usize]).collect();
        c.set(Some(&ids[0]));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (c, ids, stop) = (c.clone(), ids.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    c.set(Some(&ids[i % ids.len()]));
                }
            })
        };
        let mut seen = 0;
        for _ in 0..200_000 {
            if let Some(v) = read(&c, 512) {
                assert!(ids.contains(&v), "torn read: {}", String::from_utf8_lossy(&v));
                seen += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(seen > 0);
    }
}
