"""Deterministic torch.save files: shared by the fixture scripts and the demo model's trainer."""
from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path


def pin_torch_zip_serialization_id(path: Path) -> None:
    """Make a torch.save zip file deterministic.

    torch >= 2.3 writes a record `<archive>/.data/serialization_id` whose value is
    20 digits of the combined CRC of the other records followed by 20 digits of a
    *random* number.  We replace the random half with zeros in place (same length)
    and fix the CRC-32 stored for that record in its local header and in the
    central directory.  Everything else stays exactly as torch wrote it
    (including torch's 64-byte data alignment padding).
    """
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        infos = [i for i in zf.infolist() if i.filename.endswith(".data/serialization_id")]
        if not infos:
            return
        info = infos[0]
        old = zf.read(info)
        start_dir = zf.start_dir
    new = old[:20] + b"0" * (len(old) - 20)
    new_crc = struct.pack("<I", zlib.crc32(new))
    # Local file header: signature, ..., CRC-32 at +14, name length at +26, extra length at +28.
    lh = info.header_offset
    assert data[lh:lh + 4] == b"PK\x03\x04"
    name_len, extra_len = struct.unpack_from("<HH", data, lh + 26)
    body = lh + 30 + name_len + extra_len
    assert bytes(data[body:body + len(old)]) == old
    data[body:body + len(new)] = new
    data[lh + 14:lh + 18] = new_crc
    # Central directory entries: signature, ..., CRC-32 at +16, lengths at +28/+30/+32.
    pos = start_dir
    patched = False
    while data[pos:pos + 4] == b"PK\x01\x02":
        n, e, c = struct.unpack_from("<HHH", data, pos + 28)
        name = bytes(data[pos + 46:pos + 46 + n]).decode("utf-8")
        if name == info.filename:
            data[pos + 16:pos + 20] = new_crc
            patched = True
        pos += 46 + n + e + c
    assert patched, "serialization_id not found in central directory"
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
