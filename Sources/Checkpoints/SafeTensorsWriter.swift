import Foundation
import Tensors
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes float32 tensors as a `.safetensors` file (stored as F32, F16 or BF16).
///
/// The file appears atomically: everything goes to a temporary file in the destination's
/// directory, which is flushed to disk and then renamed over the destination. A failed write
/// leaves any previous file untouched and no temporary file behind.
public enum SafeTensorsWriter {
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:],
                             as dtype: DType = .f32, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let name = url.lastPathComponent
        guard [.f32, .f16, .bf16].contains(dtype) else {
            throw CheckpointError(file: name, "cannot write \(dtype) tensors (only F32, F16 and BF16)")
        }
        if tensors["__metadata__"] != nil {
            throw CheckpointError(file: name, "'__metadata__' is reserved and cannot name a tensor")
        }
        let names = tensors.keys.sorted()
        let header = headerBytes(names.map { ($0, tensors[$0]!.shape) }, metadata: metadata, dtype: dtype)

        let dir = url.deletingLastPathComponent().path
        let temp = "\(dir)/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw CheckpointError(file: name, "cannot create a temporary file in \(dir) (\(errnoText()))") }
        var committed = false
        defer {
            if !committed { unlink(temp) }
        }
        do {
            defer { close(fd) }
            var length = UInt64(header.count).littleEndian
            try writeAll(fd, &length, 8, name)
            try header.withUnsafeBytes { try writeAll(fd, $0.baseAddress!, $0.count, name) }
            for n in names {
                try writeData(fd, tensors[n]!, dtype, name)
            }
            guard fsync(fd) == 0 else { throw CheckpointError(file: name, "cannot flush to disk (\(errnoText()))") }
        }
        guard rename(temp, path) == 0 else { throw CheckpointError(file: name, "cannot replace the file (\(errnoText()))") }
        committed = true
        // Make the rename itself durable; failure here does not undo a completed write.
        let dfd = open(dir, O_RDONLY | O_CLOEXEC)
        if dfd >= 0 { fsync(dfd); close(dfd) }
    }

    /// The JSON header, keys sorted, padded with spaces so the data starts 8-byte aligned.
    static func headerBytes(_ entries: [(String, [Int])], metadata: [String: String], dtype: DType) -> [UInt8] {
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        var offset = 0
        for (n, shape) in entries {
            let bytes = shape.reduce(1, *) * dtype.size
            parts.append("\(jsonString(n)):{\"dtype\":\"\(dtype.rawValue)\",\"shape\":[\(shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var bytes = Array("{\(parts.joined(separator: ","))}".utf8)
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    static func jsonString(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    private static func writeData(_ fd: Int32, _ t: Tensor, _ dtype: DType, _ name: String) throws {
        let n = t.count
        if dtype == .f32 {
            // Hosts are little-endian (x86-64, arm64), so float32 memory is already the file format.
            try writeAll(fd, t.pointer, n * 4, name)
            return
        }
        let chunk = 1 << 20
        let buf = UnsafeMutablePointer<UInt16>.allocate(capacity: min(max(n, 1), chunk))
        defer { buf.deallocate() }
        var i = 0
        while i < n {
            let m = min(chunk, n - i)
            if dtype == .f16 { convertF32toF16(t.pointer + i, buf, count: m) } else { convertF32toBF16(t.pointer + i, buf, count: m) }
            try writeAll(fd, buf, m * 2, name)
            i += m
        }
    }

    private static func writeAll(_ fd: Int32, _ p: UnsafeRawPointer, _ count: Int, _ name: String) throws {
        var done = 0
        while done < count {
            let r = Glibc.write(fd, p + done, count - done)
            if r < 0 {
                if errno == EINTR { continue }
                throw CheckpointError(file: name, "write failed (\(errnoText()))")
            }
            done += r
        }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
