//! Read-only file mappings that survive their file being cut short.
//!
//! A memory-mapped file that another process truncates (an updater rewriting
//! a model in place, a full disk, a `cp` over it) turns every later read of the
//! lost pages into SIGBUS, which kills the process. Copying the files instead
//! would double the LLM's memory, so the mapping stays and is guarded: a
//! SIGBUS handler looks the faulting address up among the registered
//! mappings, replaces that whole mapping with zero pages (the read then
//! completes with zeros) and marks it. Whoever uses the mapping calls
//! [`MappedFile::check`] after the work that read it, and turns the mark into
//! an error that names the file and says what to do. A fault anywhere else
//! goes on to the previous handler, or kills the process as before.
//!
//! `check` also catches a file rewritten in place without being cut (its size
//! or modification time changed since it was mapped).
//!
//! Large files are mapped with 2 MB pages where the kernel can (Linux with
//! transparent huge pages, on a filesystem with large folios: ext4 from 6.16,
//! xfs, btrfs): an LLM decode step streams every weight once, and with 4 KB
//! pages that is a TLB miss every 4 KB. A decode-shaped read of 143 MB of
//! Q8_0 rows went from 15.1 to 17.0 GB/s here (the bandwidth probe,
//! [`crate::roofline`], reads with 2 MB pages too, so that the roofline stays
//! the best reader's).

use std::{
    fs::File,
    io,
    ops::Deref,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Once,
    },
    time::SystemTime,
};

use memmap2::Mmap;

/// Mappings guarded at once (models, LLM exports).
const SLOTS: usize = 64;

struct Slot {
    start: AtomicUsize,
    len: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Slot = Slot { start: AtomicUsize::new(0), len: AtomicUsize::new(0), faulted: AtomicBool::new(false) };
static SLOTS_IN_USE: [Slot; SLOTS] = [EMPTY; SLOTS];
static INSTALL: Once = Once::new();
/// The SIGBUS action before ours, to pass foreign faults on to.
static mut PREVIOUS: Option<libc::sigaction> = None;

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel hands a valid siginfo to an SA_SIGINFO handler.
    let addr = unsafe { (*info).si_addr() } as usize;
    for slot in &SLOTS_IN_USE {
        let (start, len) = (slot.start.load(Ordering::Acquire), slot.len.load(Ordering::Acquire));
        if start != 0 && addr >= start && addr < start + len {
            // mmap is a plain system call on Linux, safe here in practice.
            // SAFETY: the range is our own mapping; MAP_FIXED replaces it in place.
            let p = unsafe {
                libc::mmap(
                    start as *mut libc::c_void,
                    len,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                slot.faulted.store(true, Ordering::Release);
                return;
            }
        }
    }
    // Not ours: the previous handler (Rust's stack-overflow check, say), or the default.
    // SAFETY: PREVIOUS is written once, before the handler is installed.
    unsafe {
        match *std::ptr::addr_of!(PREVIOUS) {
            Some(prev) if prev.sa_sigaction != libc::SIG_DFL && prev.sa_sigaction != libc::SIG_IGN => {
                if prev.sa_flags & libc::SA_SIGINFO != 0 {
                    let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                        std::mem::transmute(prev.sa_sigaction);
                    f(sig, info, ctx);
                } else {
                    let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev.sa_sigaction);
                    f(sig);
                }
            }
            _ => {
                libc::signal(libc::SIGBUS, libc::SIG_DFL);
            }
        }
    }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sigaction with a handler that only touches atomics and mmap.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            new.sa_sigaction = on_sigbus as *const () as usize;
            new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut new.sa_mask);
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &new, &mut old) == 0 {
                PREVIOUS = Some(old);
            } else {
                log::warn!("cannot guard mapped files against truncation: {}", io::Error::last_os_error());
            }
        }
    });
}

/// Why a mapping can no longer be trusted.
#[derive(Debug, thiserror::Error)]
#[error("{} changed while emoedge was using it ({what}); restore the file (write a new one and rename it over, rather than rewriting in place), then restart or reload", path.display())]
pub struct Changed {
    pub path: PathBuf,
    pub what: &'static str,
}

/// A read-only mapping of a whole file, guarded against truncation.
pub struct MappedFile {
    map: Mmap,
    slot: Option<usize>,
    file: File,
    pub path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl MappedFile {
    pub fn open(path: &Path) -> io::Result<MappedFile> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let map = map_with_huge_pages(&file, path)?;
        install();
        let slot = (!map.is_empty()).then(|| register(map.as_ptr() as usize, map.len())).flatten();
        if slot.is_none() && !map.is_empty() {
            log::warn!("{}: no guard slot left; a truncation while mapped would crash", path.display());
        }
        Ok(MappedFile { map, slot, file, path: path.into(), len: meta.len(), modified: meta.modified().ok() })
    }

    /// Whether the file is still what was mapped: not cut while mapped (a
    /// read would have met zero pages), and not resized or rewritten since.
    pub fn check(&self) -> Result<(), Changed> {
        let changed = |what| Err(Changed { path: self.path.clone(), what });
        if self.slot.is_some_and(|s| SLOTS_IN_USE[s].faulted.load(Ordering::Acquire)) {
            return changed("it was truncated while mapped");
        }
        match self.file.metadata() {
            Ok(m) if m.len() != self.len => changed("its size changed"),
            Ok(m) if m.modified().ok() != self.modified => changed("it was rewritten"),
            Ok(_) => Ok(()),
            Err(_) => changed("it can no longer be read"),
        }
    }
}

/// Files smaller than this are mapped with the default pages: a few 2 MB
/// pages would save nothing worth a second look at the page cache.
const HUGE_PAGES_FROM: usize = 16 << 20;

/// Maps `file` read-only, with 2 MB pages where the kernel gives them. It
/// maps a file's 2 MB folios with 2 MB pages; it only creates such folios
/// when a mapping advised `MADV_HUGEPAGE` faults the file in. If the page
/// cache already holds the file in small folios (it was written, or read
/// without the advice), those are dropped once (clean pages, re-read from
/// the disk on the next fault) and the file is mapped again. Anything that
/// fails on the way leaves a plain mapping, which reads the same bytes.
#[cfg_attr(not(target_os = "linux"), allow(unused_variables))]
fn map_with_huge_pages(file: &File, path: &Path) -> io::Result<Mmap> {
    // SAFETY: read-only; a truncation while mapped is what the guard handles.
    let map = unsafe { Mmap::map(file)? };
    #[cfg(target_os = "linux")]
    if map.len() >= HUGE_PAGES_FROM && map.advise(memmap2::Advice::HugePage).is_ok() && !pmd_mapped(&map) {
        drop(map);
        use std::os::fd::AsRawFd;
        // SAFETY: a hint on our own open descriptor; it changes no data.
        let dropped = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) } == 0;
        // SAFETY: as above.
        let map = unsafe { Mmap::map(file)? };
        let huge = map.advise(memmap2::Advice::HugePage).is_ok() && pmd_mapped(&map);
        log::debug!(
            "{}: mapped with 2 MB pages after dropping its cached small pages: {huge} (dropped: {dropped})",
            path.display()
        );
        return Ok(map);
    }
    Ok(map)
}

/// Whether `map`'s first whole 2 MB page is mapped as one (it faults it in
/// to see): `FilePmdMapped` of its entry in /proc/self/smaps.
#[cfg(target_os = "linux")]
fn pmd_mapped(map: &Mmap) -> bool {
    const PMD: usize = 2 << 20;
    let start = map.as_ptr() as usize;
    let aligned = start.next_multiple_of(PMD) - start;
    if aligned + PMD > map.len() {
        return false;
    }
    // SAFETY: in bounds (checked above); a volatile read so that it happens.
    unsafe { std::ptr::read_volatile(map.as_ptr().add(aligned)) };
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else { return false };
    let head = format!("{start:x}-");
    smaps
        .split_once(&head)
        .and_then(|(_, entry)| entry.lines().find_map(|l| l.strip_prefix("FilePmdMapped:")))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .is_some_and(|kb| kb > 0)
}

fn register(start: usize, len: usize) -> Option<usize> {
    for (i, slot) in SLOTS_IN_USE.iter().enumerate() {
        if slot.start.compare_exchange(0, start, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            slot.faulted.store(false, Ordering::Release);
            slot.len.store(len, Ordering::Release);
            return Some(i);
        }
    }
    None
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        if let Some(s) = self.slot {
            SLOTS_IN_USE[s].len.store(0, Ordering::Release);
            SLOTS_IN_USE[s].start.store(0, Ordering::Release);
        }
    }
}

impl Deref for MappedFile {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small file and one large enough for 2 MB pages (mapped again after
    /// its small cached pages are dropped, where the kernel allows): both read
    /// their bytes, and both survive being cut.
    #[test]
    fn a_file_cut_while_mapped_reads_zeros_and_reports_it() {
        for (size, tag) in [(1usize << 20, "small"), (HUGE_PAGES_FROM + (4 << 20), "large")] {
            let path = std::env::temp_dir().join(format!("emoedge-mapped-{tag}-{}", std::process::id()));
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8 + 1).collect();
            std::fs::write(&path, &bytes).unwrap();
            let map = MappedFile::open(&path).unwrap();
            assert!(map[..] == bytes[..], "{tag}: the mapping reads the file's bytes");
            map.check().unwrap();
            // Cut it to one page: every later page would be SIGBUS without the guard.
            File::options().write(true).open(&path).unwrap().set_len(4096).unwrap();
            let tail: u64 = map[8192..].iter().map(|b| *b as u64).sum();
            assert_eq!(tail, 0, "{tag}: the lost pages read as zeros");
            let e = map.check().unwrap_err().to_string();
            assert!(e.contains("truncated while mapped") && e.contains("emoedge-mapped"), "{e}");
            drop(map);
            std::fs::remove_file(&path).unwrap();
        }
        let path = std::env::temp_dir().join(format!("emoedge-mapped-{}", std::process::id()));
        // A file rewritten at the same size is caught by its metadata.
        std::fs::write(&path, vec![1u8; 4096]).unwrap();
        let map = MappedFile::open(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, vec![2u8; 8192]).unwrap();
        assert!(map.check().is_err());
        std::fs::remove_file(&path).unwrap();
    }
}
