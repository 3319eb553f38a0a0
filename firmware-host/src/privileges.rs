//! Dropping root once the devices are open: the daemon then runs as an
//! ordinary user with that user's groups (`video` for the camera, so that a
//! camera plugged back in can still be opened).

use std::ffi::CString;

use anyhow::{bail, Result};

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Becomes `user`: its groups, its gid, its uid, in that order (after setuid
/// there is no going back, which is the point). Must run before other threads
/// start.
pub fn drop_to(user: &str) -> Result<()> {
    if !is_root() {
        bail!("[service] user = {user:?} needs the daemon started as root (it is uid {}); remove the key or start it as root", unsafe { libc::geteuid() });
    }
    let name = CString::new(user)?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy
    // the two fields out before any other call could reuse it.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        bail!("[service] user = {user:?}: no such user");
    }
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    // SAFETY: plain syscalls wrappers on values we own.
    unsafe {
        if libc::initgroups(name.as_ptr(), gid) != 0 {
            bail!("cannot take on the groups of {user}: {}", std::io::Error::last_os_error());
        }
        if libc::setgid(gid) != 0 {
            bail!("cannot become group {gid}: {}", std::io::Error::last_os_error());
        }
        if libc::setuid(uid) != 0 {
            bail!("cannot become user {user} ({uid}): {}", std::io::Error::last_os_error());
        }
        if uid != 0 && libc::setuid(0) == 0 {
            bail!("dropped to {user} but could become root again; refusing to run");
        }
    }
    log::info!("running as {user} (uid {uid}, gid {gid})");
    Ok(())
}
