//! Keeps the daemon's resident memory flat over months.
//!
//! The daemon's live heap is steady, but glibc's malloc lets RSS creep up in
//! steps (seen in the 30-minute soak: +0.9 MiB, then +2.3 MiB at ~24 min):
//! - every short-lived client thread may be handed its own arena (up to 8 per
//!   core), and freed memory in an arena stays resident;
//! - the mmap threshold adapts upwards each time a large block is freed, so
//!   tensors of a few MiB end up in the heap, where they fragment it;
//! - free memory in the middle of a heap is only given back by `malloc_trim`.
//!
//! So: two arenas, a fixed mmap threshold (a big buffer goes back to the
//! kernel when it is freed), and a trim once a minute. With another C
//! library (musl) these calls are left out.

/// Sets malloc's policy. Call before any thread starts.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc parameters; it is called before the
    // daemon starts its threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1024 * 1024);
    }
}

/// Gives free heap pages back to the kernel, in every arena.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes malloc's own locks; it is safe from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// (bytes in use, bytes free but held) in malloc's heaps, for the summary
/// line: RSS that grows while "in use" does not is fragmentation, not a leak.
pub fn heap() -> Option<(u64, u64)> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads malloc's statistics.
        let m = unsafe { libc::mallinfo2() };
        Some(((m.uordblks + m.hblkhd) as u64, m.fordblks as u64))
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    None
}
