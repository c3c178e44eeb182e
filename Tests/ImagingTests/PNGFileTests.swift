import CZlib
import Foundation
import Imaging
import Testing
import Tensors

@Suite("PNG output")
struct PNGFileTests {
    /// Splits a PNG into (type, data) chunks, checking every CRC.
    func chunks(_ data: Data) throws -> [(String, Data)] {
        let bytes = [UInt8](data)
        #expect(Array(bytes.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        var out: [(String, Data)] = []
        var i = 8
        func be32(_ p: Int) -> Int { Int(bytes[p]) << 24 | Int(bytes[p + 1]) << 16 | Int(bytes[p + 2]) << 8 | Int(bytes[p + 3]) }
        while i + 12 <= bytes.count {
            let n = be32(i)
            let type = String(decoding: bytes[(i + 4)..<(i + 8)], as: UTF8.self)
            let body = Array(bytes[(i + 8)..<(i + 8 + n)])
            let crc = bytes[(i + 4)..<(i + 8 + n)].withContiguousStorageIfAvailable { crc32(0, $0.baseAddress, uInt($0.count)) }
                ?? Array(bytes[(i + 4)..<(i + 8 + n)]).withUnsafeBufferPointer { crc32(0, $0.baseAddress, uInt($0.count)) }
            #expect(UInt(crc) == UInt(be32(i + 8 + n)), "CRC of \(type)")
            out.append((type, Data(body)))
            i += 12 + n
        }
        return out
    }

    @Test("RGB pixels, size and the A1111 'parameters' text chunk")
    func parametersChunk() throws {
        // [1, 3, 2, 3] in [-1, 1]: red ramp, green -1, blue +1.
        let x = try Tensor(shape: [1, 3, 2, 3], scalars: [-1, 0, 1, 0.5, -0.5, 2, -1, -1, -1, -1, -1, -1, 1, 1, 1, 1, 1, 1])
        let image = try RGBImage(tensor: x)
        #expect(image.width == 3 && image.height == 2)
        #expect(image.pixels[0..<3] == [0, 0, 255] && image.pixels[3] == 128 && image.pixels[6] == 255 && image.pixels[15] == 255)
        let info = "a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 1, Size: 3x2"
        let png = try PNGFile.encode(image, text: [("parameters", info)])
        let parts = try chunks(png)
        #expect(parts.first?.0 == "IHDR" && parts.last?.0 == "IEND")
        let ihdr = [UInt8](parts[0].1)
        #expect(ihdr[3] == 3 && ihdr[7] == 2 && ihdr[8] == 8 && ihdr[9] == 2)  // 3×2, 8-bit RGB
        let text = parts.first { $0.0 == "tEXt" }.map { String(decoding: $0.1, as: UTF8.self) }
        #expect(text == "parameters\0" + info)
    }

    @Test("atomic write: no temporary file left; unwritable target is a one-line error")
    func atomicWrite() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pareidolia-png-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = RGBImage(width: 1, height: 1, pixels: [1, 2, 3])
        let path = dir.appendingPathComponent("out.png").path
        try PNGFile.write(image, to: path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.png"])
        do {
            try PNGFile.write(image, to: dir.appendingPathComponent("missing/out.png").path)
            Issue.record("expected an error")
        } catch {
            #expect("\(error)".contains("missing/out.png") && !"\(error)".contains("\n"))
        }
    }
}

@Suite("PNG text chunks read back")
struct PNGTextTests {
    @Test("the chunks written are read back; damaged files fail in one line")
    func roundTrip() throws {
        let image = RGBImage(width: 3, height: 2, pixels: [UInt8](repeating: 7, count: 18))
        let text = "a witch, ünïcode ✓\nSteps: 20, Seed: 1, Size: 512x512"
        let data = try PNGFile.encode(image, text: [("parameters", text), ("other", "x")])
        let back = try PNGFile.readText(data, source: "mem")
        #expect(back.map(\.key) == ["parameters", "other"] && back[0].value == text)
        #expect(throws: PNGFile.ReadError.self) { try PNGFile.readText(Data("not a png".utf8), source: "x") }
        #expect(throws: PNGFile.ReadError.self) { try PNGFile.readText(data.prefix(20), source: "x") }
        var corrupt = data
        corrupt[12] ^= 0xFF  // the IHDR chunk type: libpng's error is caught, not a crash
        #expect(throws: PNGFile.ReadError.self) { try PNGFile.readText(corrupt, source: "x") }
        #expect(try PNGFile.readText(PNGFile.encode(image), source: "x").isEmpty)
    }
}
