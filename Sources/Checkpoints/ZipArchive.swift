/// Just enough ZIP to read PyTorch archives: the central directory (ZIP64 included, which torch
/// writes for big files) and uncompressed ("stored") entries, whose bytes are slices of the
/// memory-mapped file. Compressed or encrypted entries are listed but refused on access.
public final class ZipArchive: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        /// 0 = stored; anything else is a compression method we refuse.
        public let method: UInt16
        public let flags: UInt16
        public let compressedSize: Int
        public let uncompressedSize: Int
        public let localHeaderOffset: Int
    }

    public let file: MappedFile
    /// Entries in central-directory order.
    public let entries: [Entry]
    private let index: [String: Int]

    public convenience init(path: String) throws {
        try self.init(file: try MappedFile(path: path))
    }

    public init(file: MappedFile) throws {
        self.file = file
        let bytes = file.allBytes
        func fail(_ m: String) -> CheckpointError { CheckpointError(file: file.name, m) }

        let eocd = try ZipArchive.findEndRecord(bytes, fail)
        var count = Int(bytes.le16(eocd + 10))
        var cdSize = Int(bytes.le32(eocd + 12))
        var cdOffset = Int(bytes.le32(eocd + 16))
        guard bytes.le16(eocd + 4) == 0 || bytes.le16(eocd + 4) == 0xFFFF,
              bytes.le16(eocd + 6) == 0 || bytes.le16(eocd + 6) == 0xFFFF else {
            throw fail("multi-volume ZIP archives are not supported")
        }
        // ZIP64: a locator sits just before the classic record and points at the 64-bit one.
        if eocd >= 20, bytes.le32(eocd - 20) == 0x0706_4B50 {
            let z = bytes.le64(eocd - 20 + 8)
            guard z <= UInt64(file.size), file.contains(offset: Int(z), count: 56), bytes.le32(Int(z)) == 0x0606_4B50 else {
                throw fail("ZIP64 end-of-central-directory record missing or damaged (file truncated?)")
            }
            let at = Int(z)
            let c64 = bytes.le64(at + 32), s64 = bytes.le64(at + 40), o64 = bytes.le64(at + 48)
            guard c64 <= UInt64(Int.max), s64 <= UInt64(file.size), o64 <= UInt64(file.size) else {
                throw fail("ZIP64 directory position lies outside the file (file truncated?)")
            }
            count = Int(c64); cdSize = Int(s64); cdOffset = Int(o64)
        }
        guard file.contains(offset: cdOffset, count: cdSize) else {
            throw fail("ZIP central directory at bytes \(cdOffset)..<\(cdOffset + cdSize) lies outside the file (\(file.size) bytes; truncated?)")
        }
        guard count <= cdSize / 46 else {
            throw fail("ZIP central directory claims \(count) entries but holds only \(cdSize) bytes")
        }

        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var index: [String: Int] = [:]
        var p = cdOffset
        let cdEnd = cdOffset + cdSize
        for i in 0..<count {
            guard p + 46 <= cdEnd, bytes.le32(p) == 0x0201_4B50 else {
                throw fail("ZIP central directory entry \(i) is damaged")
            }
            let nameLen = Int(bytes.le16(p + 28)), extraLen = Int(bytes.le16(p + 30)), commentLen = Int(bytes.le16(p + 32))
            guard p + 46 + nameLen + extraLen + commentLen <= cdEnd else {
                throw fail("ZIP central directory entry \(i) runs past the directory")
            }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(p + 46)..<(p + 46 + nameLen)]), as: UTF8.self)
            var uncompressed = UInt64(bytes.le32(p + 24))
            var compressed = UInt64(bytes.le32(p + 20))
            var local = UInt64(bytes.le32(p + 42))
            // ZIP64 extra field: 64-bit values for whichever fields were saturated, in this order.
            var e = p + 46 + nameLen
            let extraEnd = e + extraLen
            while e + 4 <= extraEnd {
                let id = bytes.le16(e), size = Int(bytes.le16(e + 2))
                let body = e + 4
                guard body + size <= extraEnd else { break }
                if id == 0x0001 {
                    var q = body
                    func next() -> UInt64? {
                        guard q + 8 <= body + size else { return nil }
                        defer { q += 8 }
                        return bytes.le64(q)
                    }
                    if uncompressed == 0xFFFF_FFFF { uncompressed = next() ?? uncompressed }
                    if compressed == 0xFFFF_FFFF { compressed = next() ?? compressed }
                    if local == 0xFFFF_FFFF { local = next() ?? local }
                }
                e = body + size
            }
            let limit = UInt64(file.size)
            guard compressed <= limit, local <= limit, uncompressed <= UInt64(Int.max) else {
                throw fail("ZIP entry \(quoted(name)) lies outside the file (truncated?)")
            }
            let entry = Entry(name: name, method: bytes.le16(p + 10), flags: bytes.le16(p + 8),
                              compressedSize: Int(compressed), uncompressedSize: Int(uncompressed),
                              localHeaderOffset: Int(local))
            if index[name] == nil { index[name] = entries.count }
            entries.append(entry)
            p += 46 + nameLen + extraLen + commentLen
        }
        self.entries = entries
        self.index = index
    }

    public subscript(name: String) -> Entry? { index[name].map { entries[$0] } }

    /// Absolute file offset and length of a stored entry's bytes.
    public func dataRange(of entry: Entry) throws -> (offset: Int, count: Int) {
        func fail(_ m: String) -> CheckpointError { CheckpointError(file: file.name, "ZIP entry \(quoted(entry.name)) \(m)") }
        guard entry.flags & 1 == 0 else { throw fail("is encrypted") }
        guard entry.method == 0 else {
            throw fail("is compressed (method \(entry.method)); PyTorch archives store entries uncompressed")
        }
        guard entry.compressedSize == entry.uncompressedSize else {
            throw fail("is stored but its sizes differ (\(entry.compressedSize) vs \(entry.uncompressedSize))")
        }
        let h = entry.localHeaderOffset
        let bytes = file.allBytes
        guard file.contains(offset: h, count: 30), bytes.le32(h) == 0x0403_4B50 else {
            throw fail("has a missing or damaged local header (file truncated?)")
        }
        let start = h + 30 + Int(bytes.le16(h + 26)) + Int(bytes.le16(h + 28))
        guard file.contains(offset: start, count: entry.uncompressedSize) else {
            throw fail("data at bytes \(start)..<\(start &+ entry.uncompressedSize) runs past the end of the file (\(file.size) bytes; truncated?)")
        }
        return (start, entry.uncompressedSize)
    }

    /// A stored entry's bytes, borrowed from the mapping.
    public func bytes(of entry: Entry) throws -> UnsafeRawBufferPointer {
        let r = try dataRange(of: entry)
        return UnsafeRawBufferPointer(start: file.base + r.offset, count: r.count)
    }

    /// The end-of-central-directory record: the last "PK\5\6" within the final 64 KiB + 22 bytes.
    private static func findEndRecord(_ bytes: UnsafeRawBufferPointer, _ fail: (String) -> CheckpointError) throws -> Int {
        guard bytes.count >= 22 else {
            throw fail("file is \(bytes.count) bytes, too short for a ZIP archive (truncated?)")
        }
        let lowest = max(0, bytes.count - 22 - 0xFFFF)
        var p = bytes.count - 22
        while p >= lowest {
            if bytes[p] == 0x50, bytes.le32(p) == 0x0605_4B50, p + 22 + Int(bytes.le16(p + 20)) <= bytes.count {
                return p
            }
            p -= 1
        }
        throw fail("no ZIP end-of-central-directory record (file truncated or not a ZIP archive)")
    }
}
