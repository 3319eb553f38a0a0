//! The memory roofline: how fast one core can stream bytes from RAM.
//!
//! A decode step of the LLM reads every weight once, so weight bytes ÷ this
//! bandwidth is the fastest step possible. The probe reads a buffer much
//! larger than the caches with eight independent accumulators (AVX2 on
//! x86_64, plain u64 lanes elsewhere), so neither the add latency nor a single
//! load stream limits it: a one-accumulator loop measures latency, not
//! bandwidth.

use std::time::Instant;

/// Bytes/s read by one thread over a `bytes`-sized buffer, best of `passes`.
pub fn read_bandwidth(bytes: usize, passes: usize) -> f64 {
    let words = (bytes / 8).max(1 << 10) & !63;
    // 2 MB pages where the kernel gives them, as the LLM's weights get
    // ([`crate::mapped`]): fewer TLB misses read faster (16.1 against 18.1
    // GB/s here), and the probe is to be the best reader.
    let mut map = memmap2::MmapMut::map_anon(words * 8).ok();
    #[cfg(target_os = "linux")]
    if let Some(m) = &map {
        let _ = m.advise(memmap2::Advice::HugePage);
    }
    let mut vec = Vec::new();
    let buf: &mut [u64] = match &mut map {
        // SAFETY: a fresh anonymous mapping is page-aligned and zeroed, a valid [u64].
        Some(m) => unsafe { std::slice::from_raw_parts_mut(m.as_mut_ptr() as *mut u64, words) },
        None => {
            vec.resize(words, 0);
            &mut vec
        }
    };
    // Touch every page with non-zero data first, so the timed passes read RAM
    // rather than the shared zero page.
    for (i, w) in buf.iter_mut().enumerate() {
        *w = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    let mut best = 0f64;
    let mut sink = 0u64;
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        sink ^= sum(buf);
        let secs = t.elapsed().as_secs_f64();
        best = best.max((words * 8) as f64 / secs);
    }
    std::hint::black_box(sink);
    best
}

fn sum(buf: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 is present (checked above).
        return unsafe { sum_avx2(buf) };
    }
    let mut acc = [0u64; 8];
    for chunk in buf.chunks_exact(8) {
        for (a, v) in acc.iter_mut().zip(chunk) {
            *a = a.wrapping_add(*v);
        }
    }
    acc.iter().fold(0, |a, b| a ^ b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_avx2(buf: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_setzero_si256(); 8];
    let p = buf.as_ptr() as *const __m256i;
    // 8 × 32 bytes = 256 bytes per step: four cache lines, eight loads in flight.
    for step in 0..buf.len() / 32 {
        for (i, a) in acc.iter_mut().enumerate() {
            *a = _mm256_add_epi64(*a, _mm256_loadu_si256(p.add(step * 8 + i)));
        }
    }
    let mut out = [0u64; 4];
    let total = acc.iter().fold(_mm256_setzero_si256(), |s, a| _mm256_xor_si256(s, *a));
    _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, total);
    out.iter().fold(0, |a, b| a ^ b)
}

#[cfg(test)]
mod tests {
    /// The probe measures something plausible: more than 100 MB/s, less than 1 TB/s.
    #[test]
    fn bandwidth_is_plausible() {
        let bw = super::read_bandwidth(64 << 20, 2);
        assert!(bw > 1e8 && bw < 1e12, "{bw}");
    }
}
