//! The kiosk screen's output: the Linux framebuffer, or PNG snapshots where
//! there is none. What is drawn comes from `emoedge::sink::kiosk`.

use std::{
    fs::{File, OpenOptions},
    path::Path,
};

use anyhow::{bail, Context, Result};
use image::RgbImage;
use memmap2::{MmapMut, MmapOptions};

#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct FbBitfield {
    offset: u32,
    length: u32,
    msb_right: u32,
}

/// linux/fb.h `struct fb_var_screeninfo`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
struct FbVarScreeninfo {
    xres: u32,
    yres: u32,
    xres_virtual: u32,
    yres_virtual: u32,
    xoffset: u32,
    yoffset: u32,
    bits_per_pixel: u32,
    grayscale: u32,
    red: FbBitfield,
    green: FbBitfield,
    blue: FbBitfield,
    transp: FbBitfield,
    rest: [u32; 20],
}

/// linux/fb.h `struct fb_fix_screeninfo`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct FbFixScreeninfo {
    id: [u8; 16],
    smem_start: libc::c_ulong,
    smem_len: u32,
    kind: u32,
    type_aux: u32,
    visual: u32,
    xpanstep: u16,
    ypanstep: u16,
    ywrapstep: u16,
    line_length: u32,
    mmio_start: libc::c_ulong,
    mmio_len: u32,
    accel: u32,
    capabilities: u16,
    reserved: [u16; 2],
}

const FBIOGET_VSCREENINFO: libc::c_ulong = 0x4600;
const FBIOGET_FSCREENINFO: libc::c_ulong = 0x4602;

/// How one pixel is laid out in the framebuffer's memory.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PixelLayout {
    pub bytes: usize,
    /// (offset, length) of red, green and blue within the pixel's value.
    pub channels: [(u32, u32); 3],
}

impl PixelLayout {
    /// Packs an RGB8 pixel into `out` (little-endian, `bytes` long).
    pub fn pack(&self, rgb: [u8; 3], out: &mut [u8]) {
        let mut v: u32 = 0;
        for ((offset, length), c) in self.channels.iter().zip(rgb) {
            let len = (*length).min(8);
            v |= ((c as u32) >> (8 - len)) << offset;
        }
        out[..self.bytes].copy_from_slice(&v.to_le_bytes()[..self.bytes]);
    }
}

pub struct Framebuffer {
    map: MmapMut,
    pub width: u32,
    pub height: u32,
    line: usize,
    layout: PixelLayout,
    _file: File,
}

impl Framebuffer {
    pub fn open(path: &Path) -> Result<Framebuffer> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let mut var = FbVarScreeninfo::default();
        // SAFETY: the ioctls fill structs of the kernel's layout that we own.
        let mut fix: FbFixScreeninfo = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(fd, FBIOGET_VSCREENINFO as _, &mut var) } != 0
            || unsafe { libc::ioctl(fd, FBIOGET_FSCREENINFO as _, &mut fix) } != 0
        {
            bail!("{} is not a framebuffer: {}", path.display(), std::io::Error::last_os_error());
        }
        let bytes = var.bits_per_pixel as usize / 8;
        if !matches!(bytes, 2..=4) {
            bail!("{}: {} bits per pixel is not supported (16, 24 or 32 are)", path.display(), var.bits_per_pixel);
        }
        let line = fix.line_length as usize;
        let needed = line * var.yres as usize;
        if line < var.xres as usize * bytes || (fix.smem_len as usize) < needed {
            bail!("{}: inconsistent geometry (line {line} bytes, memory {})", path.display(), fix.smem_len);
        }
        // SAFETY: the framebuffer's memory stays mapped while we hold the file.
        let map = unsafe { MmapOptions::new().len(needed).map_mut(&file) }
            .with_context(|| format!("cannot map {}", path.display()))?;
        let layout = PixelLayout {
            bytes,
            channels: [
                (var.red.offset, var.red.length),
                (var.green.offset, var.green.length),
                (var.blue.offset, var.blue.length),
            ],
        };
        log::info!("{}: {}x{} at {} bpp", path.display(), var.xres, var.yres, var.bits_per_pixel);
        Ok(Framebuffer { map, width: var.xres, height: var.yres, line, layout, _file: file })
    }

    pub fn show(&mut self, img: &RgbImage) {
        let (w, h) = (img.width().min(self.width) as usize, img.height().min(self.height) as usize);
        let b = self.layout.bytes;
        for y in 0..h {
            let row = &mut self.map[y * self.line..y * self.line + w * b];
            for (x, px) in row.chunks_exact_mut(b).enumerate() {
                self.layout.pack(img.get_pixel(x as u32, y as u32).0, px);
            }
        }
    }
}

/// Writes `img` to `path` as a PNG, atomically (readers never see half a file).
pub fn write_png(img: &RgbImage, path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("png.tmp");
    img.save_with_format(&tmp, image::ImageFormat::Png).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_common_layouts() {
        let rgb565 = PixelLayout { bytes: 2, channels: [(11, 5), (5, 6), (0, 5)] };
        let mut out = [0u8; 2];
        rgb565.pack([255, 0, 0], &mut out);
        assert_eq!(u16::from_le_bytes(out), 0xF800);
        rgb565.pack([0, 255, 0], &mut out);
        assert_eq!(u16::from_le_bytes(out), 0x07E0);
        let xrgb = PixelLayout { bytes: 4, channels: [(16, 8), (8, 8), (0, 8)] };
        let mut out = [0u8; 4];
        xrgb.pack([1, 2, 3], &mut out);
        assert_eq!(out, [3, 2, 1, 0]);
    }

    #[test]
    fn a_regular_file_is_not_a_framebuffer() {
        let p = std::env::temp_dir().join(format!("emoedge-fb-{}", std::process::id()));
        std::fs::write(&p, [0u8; 64]).unwrap();
        let e = Framebuffer::open(&p).err().unwrap().to_string();
        assert!(e.contains("not a framebuffer"), "{e}");
        std::fs::remove_file(&p).unwrap();
        assert!(Framebuffer::open(Path::new("/nonexistent/fb9")).is_err());
    }
}
