import Checkpoints
import Foundation

/// A1111's "Model hash": the first 10 hex digits of the weight file's SHA-256 (for a diffusers
/// folder, of its UNet weights). Hashing a 4 GB file takes seconds, so results are cached in
/// `~/.cache/pareidolia/model-hashes.json` by path, size and modification time.
public enum ModelHash {
    public static func shortHash(of path: String) -> String? {
        guard let file = weightFile(path) else { return nil }
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: file),
              let size = attrs[.size] as? Int, let mtime = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970
        else { return nil }
        let key = "\(URL(fileURLWithPath: file).standardizedFileURL.path)|\(size)|\(Int(mtime))"
        var cache = loadCache()
        if let hit = cache[key] { return hit }
        guard let mapped = try? MappedFile(path: file) else { return nil }
        var sha = SHA256()
        sha.update(mapped.allBytes)
        let short = String(sha.finish().prefix(10))
        cache[key] = short
        saveCache(cache)
        return short
    }

    /// A1111's short hash of a textual-inversion file ("TI hashes"): the first 12 hex digits of
    /// its SHA-256.
    public static func embeddingHash(of path: String) -> String? {
        guard let mapped = try? MappedFile(path: path) else { return nil }
        var sha = SHA256()
        sha.update(mapped.allBytes)
        return String(sha.finish().prefix(12))
    }

    static func weightFile(_ path: String) -> String? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return nil }
        guard isDir.boolValue else { return path }
        let unet = URL(fileURLWithPath: path).appendingPathComponent("unet")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: unet.path)) ?? []
        let pick = names.sorted().first { $0.hasSuffix(".safetensors") } ?? names.sorted().first { $0.hasSuffix(".bin") }
        return pick.map { unet.appendingPathComponent($0).path }
    }

    static var cacheURL: URL {
        FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/pareidolia/model-hashes.json")
    }

    static func loadCache() -> [String: String] {
        guard let data = try? Data(contentsOf: cacheURL) else { return [:] }
        return (try? JSONSerialization.jsonObject(with: data) as? [String: String]) ?? [:]
    }

    static func saveCache(_ cache: [String: String]) {
        try? FileManager.default.createDirectory(at: cacheURL.deletingLastPathComponent(), withIntermediateDirectories: true)
        if let data = try? JSONSerialization.data(withJSONObject: cache, options: [.sortedKeys]) {
            try? data.write(to: cacheURL, options: .atomic)
        }
    }
}

/// SHA-256 (FIPS 180-4), enough for model hashes; no crypto library is needed for that.
public struct SHA256 {
    private var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    private var buffer = [UInt8]()
    private var length: UInt64 = 0

    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    public init() {}

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        length += UInt64(bytes.count)
        var offset = 0
        if !buffer.isEmpty {
            let take = min(64 - buffer.count, bytes.count)
            buffer += bytes[0..<take]
            offset = take
            if buffer.count == 64 { buffer.withUnsafeBytes { compress($0.baseAddress!) }; buffer = [] }
        }
        while offset + 64 <= bytes.count { compress(bytes.baseAddress! + offset); offset += 64 }
        if offset < bytes.count { buffer += bytes[offset...] }
    }

    public mutating func update(_ data: [UInt8]) { data.withUnsafeBytes { update($0) } }

    /// The digest as lowercase hex.
    public mutating func finish() -> String {
        let bits = length &* 8
        var tail = buffer + [0x80]
        while tail.count % 64 != 56 { tail.append(0) }
        for i in (0..<8).reversed() { tail.append(UInt8(truncatingIfNeeded: bits >> (UInt64(i) * 8))) }
        tail.withUnsafeBytes { raw in
            for block in stride(from: 0, to: raw.count, by: 64) { compress(raw.baseAddress! + block) }
        }
        buffer = []
        return h.map { String(format: "%08x", $0) }.joined()
    }

    private mutating func compress(_ p: UnsafeRawPointer) {
        withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { compress(p, schedule: $0.baseAddress!) }
    }

    private mutating func compress(_ p: UnsafeRawPointer, schedule w: UnsafeMutablePointer<UInt32>) {
        for i in 0..<16 {
            let b = p + i * 4
            w[i] = UInt32(b.load(as: UInt8.self)) << 24 | UInt32((b + 1).load(as: UInt8.self)) << 16
                | UInt32((b + 2).load(as: UInt8.self)) << 8 | UInt32((b + 3).load(as: UInt8.self))
        }
        func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        for i in 0..<64 {
            let s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
            let ch = (e & f) ^ (~e & g)
            let t1 = hh &+ s1 &+ ch &+ Self.k[i] &+ w[i]
            let s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
            let maj = (a & b) ^ (a & c) ^ (b & c)
            let t2 = s0 &+ maj
            (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        h[0] &+= a; h[1] &+= b; h[2] &+= c; h[3] &+= d; h[4] &+= e; h[5] &+= f; h[6] &+= g; h[7] &+= hh
    }
}
