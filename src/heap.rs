//! The CLI's heap: freed memory kept for the next frame, and 2 MiB pages
//! under it once a frame has run.
//!
//! Every frame allocates the same tensors again (1.5 MiB for BlazeFace's
//! 128 × 128 maps, 3 MiB for FaceRes's largest) and reads some 20 MB of
//! weights; with 4 KiB pages that is more pages than the TLB holds, and a
//! page walk every few KiB. The daemon sets its own policy, for a flat RSS
//! over months (`firmware-host/src/memory.rs`).

/// Lets malloc keep freed memory for the next frame instead of handing it
/// back to the kernel: glibc's adaptive thresholds mapped some buffers
/// anew and trimmed others, each time faulting in zeroed pages. Fixed
/// thresholds made `bench`'s face pipeline 7–10 % faster here, as
/// onnxruntime's arena and llama.cpp's preallocated buffers are. Call it
/// before any thread starts.
pub fn keep_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters; the caller runs it
    // before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

/// Puts the heap as it is now (the models' weights, and the buffers a
/// frame allocated and freed, which the next frame reuses) into 2 MiB pages,
/// and has later faults there take 2 MiB pages too: `MADV_HUGEPAGE`, then
/// `MADV_COLLAPSE` (Linux 6.1), which copies the small pages into huge ones
/// now instead of leaving it to khugepaged. The face pipeline ran 3–4 %
/// faster per frame here; it takes some 60 ms for a 48 MB heap. Call it
/// after the first frame, when the heap has grown to its working size.
///
/// Returns the bytes advised. Only a hint: where the kernel has no
/// transparent huge pages or refuses, the pages stay as they were.
pub fn to_huge_pages() -> usize {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let Some((start, end)) = heap_range() else { return 0 };
        let (start, end) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if end <= start {
            return 0;
        }
        let len = end - start;
        // SAFETY: advice on the process's own heap; neither advice changes
        // what the memory holds (a range unmapped meanwhile fails, ENOMEM).
        let advised = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) } == 0;
        #[cfg(target_env = "gnu")]
        let collapsed = advised
            // SAFETY: as above.
            && unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_COLLAPSE) } == 0;
        #[cfg(not(target_env = "gnu"))]
        let collapsed = false;
        log::debug!("heap: {} MiB advised for 2 MiB pages: {advised}, collapsed now: {collapsed}", len >> 20);
        if advised {
            len
        } else {
            0
        }
    }
    #[cfg(not(target_os = "linux"))]
    0
}

/// The `[heap]` mapping's address range, from /proc/self/maps.
#[cfg(target_os = "linux")]
fn heap_range() -> Option<(usize, usize)> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    let range = maps.lines().find(|l| l.ends_with("[heap]"))?.split_whitespace().next()?;
    let (a, b) = range.split_once('-')?;
    Some((usize::from_str_radix(a, 16).ok()?, usize::from_str_radix(b, 16).ok()?))
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn only_whole_2_mib_pages_inside_the_heap_are_advised() {
        let heap = super::heap_range();
        // Linux shows a [heap] once malloc has used brk; qemu-user (CI's
        // AArch64 run) shows its guest none, and then nothing is advised.
        if cfg!(target_arch = "x86_64") {
            assert!(heap.is_some(), "no [heap] line in /proc/self/maps");
        }
        let advised = super::to_huge_pages();
        assert_eq!(advised % (2 << 20), 0);
        match heap {
            Some((start, end)) => {
                assert!(start < end, "{start:x}-{end:x}");
                // The heap only grows meanwhile.
                let (_, now) = super::heap_range().expect("still a heap");
                assert!(advised <= now - start, "{advised} bytes advised in {start:x}-{now:x}");
            }
            None => assert_eq!(advised, 0),
        }
    }
}
