import CZlib
import Foundation
import Imaging
import Testing

/// PNGs the png fuzz target found asking for gigabytes, kept so the checks stay.
@Suite("Fuzz regressions: PNG")
struct PNGFuzzRegressionTests {
    func chunk(_ type: String, _ body: [UInt8], length: UInt32? = nil) -> [UInt8] {
        let t = Array(type.utf8)
        let n = length ?? UInt32(body.count)
        let crc = (t + body).withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
        return withUnsafeBytes(of: n.bigEndian, Array.init) + t + body + withUnsafeBytes(of: crc.bigEndian, Array.init)
    }

    /// A PNG up to its (empty) image data: enough for the header checks and the text reader.
    func png(width: UInt32 = 2, height: UInt32 = 2, before: [UInt8] = []) -> Data {
        let ihdr = withUnsafeBytes(of: width.bigEndian, Array.init) + withUnsafeBytes(of: height.bigEndian, Array.init) + [8, 2, 0, 0, 0]
        return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + before + chunk("IDAT", []) + chunk("IEND", []))
    }

    @Test("an iTXt chunk claiming 1.5 GB is refused in one line before libpng allocates it")
    func hugeTextChunk() throws {
        let data = png(before: chunk("iTXt", Array("title\0\0\0en\0\0x".utf8), length: 1_560_281_110))
        #expect(throws: PNGFile.ReadError.self) { try PNGFile.readText(data, source: "bomb.png") }
        do { _ = try PNGFile.readText(data, source: "bomb.png") } catch {
            #expect("\(error)".contains("iTXt"))
            #expect(!"\(error)".contains("\n"))
        }
    }

    @Test("a 30000×30000 header is refused before a decoder sizes its buffer")
    func hugeImage() {
        #expect(throws: PNGFile.ReadError.self) { try PNGFile.check(png(width: 30000, height: 30000), source: "big.png") }
        #expect(throws: PNGFile.ReadError.self) { try PNGFile.check(png(width: 0, height: 2), source: "empty.png") }
        #expect(throws: Never.self) { try PNGFile.check(png(), source: "small.png") }
    }

    @Test("text chunks of a normal PNG still read")
    func normalText() throws {
        let data = png(before: chunk("tEXt", Array("parameters\0a cat".utf8)))
        let text = try PNGFile.readText(data, source: "ok.png")
        #expect(text.count == 1 && text[0].key == "parameters" && text[0].value == "a cat")
    }
}
