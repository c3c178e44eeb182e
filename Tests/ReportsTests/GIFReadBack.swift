import CGif
import Foundation

/// A GIF decoded by giflib, for checking what GIFWriter wrote (tests only): an independent
/// decoder path (DGifSlurp) rather than re-reading our own bytes by hand.
struct GIFReadBack {
    struct Frame {
        var left, top, width, height: Int
        /// From the frame's graphics control block; nil when the frame has none.
        var delayCentiseconds: Int?
        /// Palette lookup of the frame's indices, row-major RGB (`height × width × 3`).
        var rgb: [UInt8]
    }

    var width: Int
    var height: Int
    var frames: [Frame]
    /// The NETSCAPE2.0 loop count (0 = forever); nil when the extension is absent.
    var loopCount: Int?

    var frameCount: Int { frames.count }
    var loops: Bool { loopCount != nil }

    struct Failure: Error, CustomStringConvertible { let description: String }

    static func read(_ path: String) throws -> GIFReadBack {
        func reason(_ code: Int32) -> String { GifErrorString(code).map { String(cString: $0) } ?? "error \(code)" }
        var openError: Int32 = 0
        guard let gif = DGifOpenFileName(path, &openError) else {
            throw Failure(description: "\(path): cannot open (\(reason(openError)))")
        }
        defer { var closeError: Int32 = 0; _ = DGifCloseFile(gif, &closeError) }
        guard DGifSlurp(gif) == GIF_OK else { throw Failure(description: "\(path): cannot decode (\(reason(gif.pointee.Error)))") }

        let file = gif.pointee
        var result = GIFReadBack(width: Int(file.SWidth), height: Int(file.SHeight), frames: [], loopCount: nil)
        for i in 0..<Int(file.ImageCount) {
            let image = file.SavedImages[i]
            let desc = image.ImageDesc
            guard let map = desc.ColorMap ?? file.SColorMap else { throw Failure(description: "\(path): frame \(i) has no palette") }
            let count = Int(desc.Width) * Int(desc.Height)
            var rgb = [UInt8](repeating: 0, count: count * 3)
            for p in 0..<count {
                let k = Int(image.RasterBits[p])
                guard k < Int(map.pointee.ColorCount) else { throw Failure(description: "\(path): frame \(i) index \(k) outside its palette") }
                let c = map.pointee.Colors[k]
                rgb[3 * p] = c.Red
                rgb[3 * p + 1] = c.Green
                rgb[3 * p + 2] = c.Blue
            }
            var control = GraphicsControlBlock()
            let delay = DGifSavedExtensionToGCB(gif, Int32(i), &control) == GIF_OK ? Int(control.DelayTime) : nil
            result.frames.append(Frame(left: Int(desc.Left), top: Int(desc.Top), width: Int(desc.Width), height: Int(desc.Height),
                                       delayCentiseconds: delay, rgb: rgb))
            if let loop = loopCount(image.ExtensionBlocks, Int(image.ExtensionBlockCount)) { result.loopCount = loop }
        }
        // Extensions after the last image are kept on the file itself.
        if let loop = loopCount(file.ExtensionBlocks, Int(file.ExtensionBlockCount)) { result.loopCount = loop }
        return result
    }

    /// DGifSlurp keeps an application extension as a block whose bytes are the 11-byte
    /// identifier, followed by continuation blocks with its data: here [1, count lo, count hi].
    private static func loopCount(_ blocks: UnsafeMutablePointer<ExtensionBlock>?, _ count: Int) -> Int? {
        guard let blocks else { return nil }
        for i in 0..<count where blocks[i].Function == APPLICATION_EXT_FUNC_CODE {
            let id = String(decoding: UnsafeBufferPointer(start: blocks[i].Bytes, count: Int(blocks[i].ByteCount)), as: UTF8.self)
            guard id == "NETSCAPE2.0", i + 1 < count, blocks[i + 1].Function == CONTINUE_EXT_FUNC_CODE,
                  blocks[i + 1].ByteCount >= 3, blocks[i + 1].Bytes[0] == 1 else { continue }
            return Int(blocks[i + 1].Bytes[1]) | Int(blocks[i + 1].Bytes[2]) << 8
        }
        return nil
    }
}
