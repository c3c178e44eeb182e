import Foundation
@testable import Tensors

/// Test-only safetensors reader (independent of Sources/Checkpoints, as a cross-check):
/// 8-byte little-endian header length, JSON header, raw little-endian data.
struct KernelFixtures {
    struct Entry { let dtype: String; let shape: [Int]; let bytes: Data }

    let entries: [String: Entry]
    let metadata: [String: String]

    static let kernels: KernelFixtures = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Fixtures/kernels.safetensors").standardized
        do { return try KernelFixtures(url: url) } catch { fatalError("cannot read \(url.path): \(error)") }
    }()

    init(url: URL) throws {
        let data = try Data(contentsOf: url)
        guard data.count >= 8 else { throw TensorError("fixture file too short") }
        let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        guard 8 + n <= data.count,
              let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<8 + n)) as? [String: Any]
        else { throw TensorError("bad safetensors header") }
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            guard let info = value as? [String: Any] else { continue }
            if name == "__metadata__" { metadata = info.compactMapValues { $0 as? String }; continue }
            guard let dtype = info["dtype"] as? String, let shape = info["shape"] as? [Int],
                  let offsets = info["data_offsets"] as? [Int], offsets.count == 2, 8 + n + offsets[1] <= data.count
            else { throw TensorError("bad entry \(name)") }
            entries[name] = Entry(dtype: dtype, shape: shape, bytes: data.subdata(in: 8 + n + offsets[0]..<8 + n + offsets[1]))
        }
        self.entries = entries
        self.metadata = metadata
    }

    /// A float32 tensor (F32, or F16/BF16 widened by a plain scalar conversion).
    func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw TensorError("fixture has no tensor \(name)") }
        let count = e.shape.reduce(1, *)
        let t = Tensor(uninitializedShape: e.shape)
        switch e.dtype {
        case "F32":
            guard e.bytes.count == 4 * count else { throw TensorError("\(name): wrong byte count") }
            e.bytes.withUnsafeBytes { raw in
                for i in 0..<count { t.pointer[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
            }
        case "F16", "BF16":
            let bits = try halfBits(name)
            for i in 0..<count {
                t.pointer[i] = e.dtype == "BF16" ? Float(bitPattern: UInt32(bits[i]) << 16) : Float(Float16(bitPattern: bits[i]))
            }
        default: throw TensorError("\(name): unsupported dtype \(e.dtype)")
        }
        return t
    }

    /// The raw 16-bit patterns of an F16 or BF16 tensor.
    func halfBits(_ name: String) throws -> [UInt16] {
        guard let e = entries[name], e.dtype == "F16" || e.dtype == "BF16" else { throw TensorError("no 16-bit tensor \(name)") }
        return e.bytes.withUnsafeBytes { raw in
            (0..<e.bytes.count / 2).map { UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)) }
        }
    }

    /// An op's parameters from __metadata__ (a JSON object stored as a string).
    func parameters(_ op: String) -> [String: Any] {
        guard let s = metadata[op], let d = s.data(using: .utf8),
              let obj = try? JSONSerialization.jsonObject(with: d) as? [String: Any] else { return [:] }
        return obj
    }
}
