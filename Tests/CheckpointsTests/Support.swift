import Foundation
import Testing
@testable import Checkpoints

/// Tests/Fixtures, found from this source file (Tests/CheckpointsTests/Support.swift).
let fixturesDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

func fixture(_ relative: String) -> String { fixturesDir.appendingPathComponent(relative).path }

/// A fresh empty directory under the system temp folder, removed by the caller.
func makeTempDir() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Writes raw bytes to a temp file with the given name; returns its path.
func writeTemp(_ bytes: [UInt8], name: String, in dir: URL) throws -> String {
    let url = dir.appendingPathComponent(name)
    try Data(bytes).write(to: url)
    return url.path
}

/// Little-endian encoders for crafting files.
func le16(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt16(v).littleEndian, Array.init) }
func le32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(v).littleEndian, Array.init) }
func le64(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt64(v).littleEndian, Array.init) }
func f32Bytes(_ xs: [Float]) -> [UInt8] { xs.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) } }

/// A safetensors file from a raw header string and data (no padding unless given).
func safetensorsBytes(header: String, data: [UInt8]) -> [UInt8] {
    let h = Array(header.utf8)
    return le64(h.count) + h + data
}

/// Builds pickles opcode by opcode.
struct PickleBuilder {
    var bytes: [UInt8] = []
    mutating func op(_ o: UInt8, _ args: [UInt8] = []) { bytes.append(o); bytes += args }
    mutating func proto(_ v: UInt8 = 2) { op(0x80, [v]) }
    mutating func str(_ s: String) {
        let b = Array(s.utf8)
        if b.count < 256 { op(0x8C, [UInt8(b.count)] + b) } else { op(UInt8(ascii: "X"), le32(b.count) + b) }
    }
    mutating func binunicode(_ s: String) { let b = Array(s.utf8); op(UInt8(ascii: "X"), le32(b.count) + b) }
    mutating func int(_ v: Int) {
        if (0..<256).contains(v) { op(UInt8(ascii: "K"), [UInt8(v)]) }
        else if (0..<65536).contains(v) { op(UInt8(ascii: "M"), le16(v)) }
        else { op(UInt8(ascii: "J"), le32(Int(Int32(truncatingIfNeeded: v)) & 0xFFFF_FFFF)) }
    }
    mutating func global(_ module: String, _ name: String) { op(UInt8(ascii: "c"), Array("\(module)\n\(name)\n".utf8)) }
    mutating func mark() { op(UInt8(ascii: "(")) }
    mutating func stop() { op(UInt8(ascii: ".")) }
    mutating func put(_ i: Int) { op(UInt8(ascii: "q"), [UInt8(i)]) }
    mutating func get(_ i: Int) { op(UInt8(ascii: "h"), [UInt8(i)]) }
    /// `_rebuild_tensor_v2(persistent storage, offset, size, stride, False, OrderedDict())`.
    mutating func tensor(storageClass: String, key: String, numel: Int, offset: Int, shape: [Int], strides: [Int]) {
        global("torch._utils", "_rebuild_tensor_v2")
        mark()
        mark(); str("storage"); global("torch", storageClass); str(key); str("cpu"); int(numel); op(UInt8(ascii: "t"))
        op(UInt8(ascii: "Q"))
        int(offset)
        mark(); for s in shape { int(s) }; op(UInt8(ascii: "t"))
        mark(); for s in strides { int(s) }; op(UInt8(ascii: "t"))
        op(0x89)
        global("collections", "OrderedDict"); op(UInt8(ascii: ")")); op(UInt8(ascii: "R"))
        op(UInt8(ascii: "t"))
        op(UInt8(ascii: "R"))
    }
}

/// A stored (uncompressed) ZIP archive, optionally with ZIP64 records, built by hand.
func makeZip(_ files: [(String, [UInt8])], zip64: Bool = false, method: UInt16 = 0, alignData: Bool = true) -> [UInt8] {
    var out: [UInt8] = []
    var central: [UInt8] = []
    for (name, data) in files {
        let nameBytes = Array(name.utf8)
        let offset = out.count
        // Pad the local extra field so data starts on a 64-byte boundary, as torch does.
        var extra: [UInt8] = []
        if alignData {
            let unpadded = offset + 30 + nameBytes.count + 4
            let pad = (64 - unpadded % 64) % 64
            extra = le16(0x4B4E) + le16(pad) + [UInt8](repeating: 0x5A, count: pad)
        }
        out += le32(0x0403_4B50) + le16(zip64 ? 45 : 20) + le16(0) + le16(Int(method)) + le16(0) + le16(0)
        out += le32(0) + le32(data.count) + le32(data.count) + le16(nameBytes.count) + le16(extra.count)
        out += nameBytes + extra + data
        let cextra: [UInt8] = zip64 ? le16(1) + le16(24) + le64(data.count) + le64(data.count) + le64(offset) : []
        central += le32(0x0201_4B50) + le16(zip64 ? 45 : 20) + le16(zip64 ? 45 : 20) + le16(0) + le16(Int(method))
        central += le16(0) + le16(0) + le32(0)
        central += zip64 ? le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) : le32(data.count) + le32(data.count)
        central += le16(nameBytes.count) + le16(cextra.count) + le16(0) + le16(0) + le16(0) + le32(0)
        central += zip64 ? le32(0xFFFF_FFFF) : le32(offset)
        central += nameBytes + cextra
    }
    let cdOffset = out.count
    out += central
    if zip64 {
        let z = out.count
        out += le32(0x0606_4B50) + le64(44) + le16(45) + le16(45) + le32(0) + le32(0)
        out += le64(files.count) + le64(files.count) + le64(central.count) + le64(cdOffset)
        out += le32(0x0706_4B50) + le32(0) + le64(z) + le32(1)
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(0xFFFF) + le16(0xFFFF)
        out += le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) + le16(0)
    } else {
        out += le32(0x0605_4B50) + le16(0) + le16(0) + le16(files.count) + le16(files.count)
        out += le32(central.count) + le32(cdOffset) + le16(0)
    }
    return out
}

/// Expects a CheckpointError whose one-line description contains every fragment.
func expectCheckpointError(_ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation,
                           _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("expected a CheckpointError containing \(fragments)", sourceLocation: sourceLocation)
    } catch let e as CheckpointError {
        #expect(!e.description.contains("\n"), sourceLocation: sourceLocation)
        for f in fragments {
            #expect(e.description.contains(f), "\(e.description)", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("expected a CheckpointError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
    }
}
