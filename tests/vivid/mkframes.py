#!/usr/bin/env python3
"""Turn a PNG into raw 640x480 YUYV (YUV 4:2:2, BT.601 limited range) frames.

Standard library only (zlib reads the PNG), so the harness needs no imaging package.
The picture is scaled (bilinear) to fit 640x480 keeping its aspect, centred, and
pillar/letter-boxed. Frame k of N differs from the others only in the grey level of
the boxes, so a capture can tell *which* streamed frame it got (and that it got a
real frame, not vivid's test pattern).

usage: mkframes.py IN.png OUT.yuv [NFRAMES]
"""
import struct
import sys
import zlib

W, H = 640, 480


def read_png(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise SystemExit(f"{path}: not a PNG")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    w, h, depth, ctype, _, _, interlace = hdr
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype)
    if depth != 8 or channels is None or interlace:
        raise SystemExit(f"{path}: only 8-bit non-interlaced grey/RGB(A) PNGs are supported")
    raw = zlib.decompress(b"".join(idat))
    stride = w * channels
    prev = bytearray(stride)
    rows = []
    p = 0
    for _ in range(h):
        ftype, line = raw[p], bytearray(raw[p + 1:p + 1 + stride])
        p += 1 + stride
        bpp = channels
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        rows.append(line)
        prev = line
    # to RGB rows
    out = []
    for line in rows:
        if channels == 3:
            out.append(line)
        elif channels == 4:
            out.append(bytearray(b for i, b in enumerate(line) if i % 4 != 3))
        else:  # grey (+alpha)
            g = line[::channels]
            out.append(bytearray(v for x in g for v in (x, x, x)))
    return w, h, out


def scale(w, h, rows, tw, th):
    """Bilinear resample to tw x th, RGB rows."""
    res = []
    for y in range(th):
        sy = (y + 0.5) * h / th - 0.5
        y0 = min(max(int(sy), 0), h - 1)
        y1 = min(y0 + 1, h - 1)
        fy = min(max(sy - y0, 0.0), 1.0)
        r0, r1 = rows[y0], rows[y1]
        line = bytearray(tw * 3)
        for x in range(tw):
            sx = (x + 0.5) * w / tw - 0.5
            x0 = min(max(int(sx), 0), w - 1)
            x1 = min(x0 + 1, w - 1)
            fx = min(max(sx - x0, 0.0), 1.0)
            for c in range(3):
                a = r0[x0 * 3 + c] * (1 - fx) + r0[x1 * 3 + c] * fx
                b = r1[x0 * 3 + c] * (1 - fx) + r1[x1 * 3 + c] * fx
                line[x * 3 + c] = int(a * (1 - fy) + b * fy + 0.5)
        res.append(line)
    return res


def clamp(v):
    return 0 if v < 0 else 255 if v > 255 else int(v + 0.5)


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    n = int(sys.argv[3]) if len(sys.argv) == 4 else 4
    w, h, rows = read_png(sys.argv[1])
    k = min(W / w, H / h)
    tw, th = max(2, int(w * k) // 2 * 2), max(1, int(h * k))
    pic = scale(w, h, rows, tw, th)
    ox, oy = (W - tw) // 2 // 2 * 2, (H - th) // 2
    # YUYV of the picture area, computed once (BT.601, limited range).
    yuyv_rows = []
    for line in pic:
        o = bytearray(tw * 2)
        for x in range(0, tw, 2):
            r0, g0, b0 = line[x * 3:x * 3 + 3]
            r1, g1, b1 = line[x * 3 + 3:x * 3 + 6]
            y0 = 16 + (65.481 * r0 + 128.553 * g0 + 24.966 * b0) / 255
            y1 = 16 + (65.481 * r1 + 128.553 * g1 + 24.966 * b1) / 255
            r, g, b = (r0 + r1) / 2, (g0 + g1) / 2, (b0 + b1) / 2
            u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
            v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
            o[x * 2:x * 2 + 4] = bytes((clamp(y0), clamp(u), clamp(y1), clamp(v)))
        yuyv_rows.append(bytes(o))
    with open(sys.argv[2], "wb") as f:
        for i in range(n):
            grey = 16 + (i * 200 // max(n - 1, 1))  # box level differs per frame
            box = bytes((grey, 128)) * W
            frame = bytearray(box * H)
            for y, o in enumerate(yuyv_rows):
                s = ((oy + y) * W + ox) * 2
                frame[s:s + len(o)] = o
            assert len(frame) == W * H * 2
            f.write(frame)


if __name__ == "__main__":
    main()
