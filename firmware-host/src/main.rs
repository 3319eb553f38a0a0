//! The emoedge appliance daemon. For now a stub that proves the library links;
//! the camera loop, socket, display and watchdog come with the firmware-host issue.

fn main() -> anyhow::Result<()> {
    env_logger::init();
    log::info!("emoedge-firmware-host {} (git {})", env!("CARGO_PKG_VERSION"), emoedge::GIT_REV);
    eprintln!("emoedge-firmware-host: not implemented yet; use `emoedge analyze`");
    Ok(())
}
