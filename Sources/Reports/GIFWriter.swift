import CGif
import Foundation
import Imaging

/// One frame of an animated GIF: a full-canvas RGB picture and how long it stays on screen.
public struct GIFFrame: Sendable {
    public var width: Int
    public var height: Int
    /// Row-major RGB bytes, `height × width × 3` (the layout of `RGBImage.pixels`).
    public var rgb: [UInt8]
    /// Time on screen in hundredths of a second, the GIF's own unit (0…65535). Browsers show
    /// delays of 0 or 1 as 10, so use at least 2 for a fast animation.
    public var delayCentiseconds: Int

    public init(width: Int, height: Int, rgb: [UInt8], delayCentiseconds: Int) {
        self.width = width
        self.height = height
        self.rgb = rgb
        self.delayCentiseconds = delayCentiseconds
    }

    public init(_ image: RGBImage, delayCentiseconds: Int) {
        self.init(width: image.width, height: image.height, rgb: image.pixels, delayCentiseconds: delayCentiseconds)
    }
}

/// Why a GIF could not be made, in one line.
public struct GIFError: Error, CustomStringConvertible {
    public let description: String

    public init(description: String) { self.description = description }

    /// A giflib failure: what we were doing, and giflib's own words for its error code.
    init(giflib code: Int32, _ what: String) {
        let reason = GifErrorString(code).map { String(cString: $0) } ?? "giflib error \(code)"
        self.init(description: "GIF: \(what) (\(reason))")
    }
}

/// Animated GIF output through giflib (GIF89a). Every frame covers the whole canvas and has its
/// own 256-colour palette, so a sequence of unrelated pictures (denoising steps, attention maps)
/// keeps its colours; a NETSCAPE2.0 extension makes viewers loop it.
public enum GIFWriter {
    /// Encodes the frames and writes them atomically: to a temporary file in the same folder,
    /// renamed over `path` when complete, so a reader never sees half a GIF.
    public static func write(_ frames: [GIFFrame], to path: String, loop: Bool = true) throws {
        let data = try encode(frames, loop: loop)
        do {
            try AtomicFile.write(data, to: path)
        } catch {
            throw GIFError(description: "GIF \(error)")
        }
    }

    /// The GIF bytes. `loop` repeats the animation forever; without it viewers play it once.
    public static func encode(_ frames: [GIFFrame], loop: Bool = true) throws -> Data {
        let (width, height) = try canvasSize(frames)
        // giflib writes through a callback; collect its output in memory.
        final class Sink { var data = Data() }
        let sink = Sink()
        var openError: Int32 = 0
        let gif = EGifOpen(Unmanaged.passUnretained(sink).toOpaque(), { gif, bytes, count in
            guard let gif, let user = gif.pointee.UserData, let bytes, count > 0 else { return 0 }
            Unmanaged<Sink>.fromOpaque(user).takeUnretainedValue().data.append(bytes, count: Int(count))
            return count
        }, &openError)
        guard let gif else { throw GIFError(giflib: openError, "cannot start the encoder") }

        // The handle must be closed (it frees giflib's state) whether or not encoding succeeded.
        var failure: Error?
        do {
            try withExtendedLifetime(sink) {
                try encodeStream(frames, width: width, height: height, loop: loop, into: gif)
            }
        } catch {
            failure = error
        }
        var closeError: Int32 = 0
        let closed = EGifCloseFile(gif, &closeError)
        if let failure { throw failure }
        guard closed == GIF_OK else { throw GIFError(giflib: closeError, "cannot finish the file") }
        return sink.data
    }

    /// Header, loop extension, then per frame: graphics control block (delay), image descriptor
    /// with its local palette, and the palette indices row by row.
    private static func encodeStream(_ frames: [GIFFrame], width: Int, height: Int, loop: Bool,
                                     into gif: UnsafeMutablePointer<GifFileType>) throws {
        func check(_ rc: Int32, _ what: @autoclosure () -> String) throws {
            guard rc == GIF_OK else { throw GIFError(giflib: gif.pointee.Error, what()) }
        }
        // The low-level API writes GIF87a unless told otherwise, and 87a has no extensions.
        EGifSetGifVersion(gif, true)
        // No global palette: each frame brings its own. Colour resolution 8 bits per primary.
        try check(EGifPutScreenDesc(gif, Int32(width), Int32(height), 8, 0, nil), "cannot write the screen descriptor")

        if loop {
            // Application extension "NETSCAPE2.0", sub-block 1 = loop count (little-endian), 0 = forever.
            let application = Array("NETSCAPE2.0".utf8)
            let loopForever: [UInt8] = [1, 0, 0]
            try check(EGifPutExtensionLeader(gif, APPLICATION_EXT_FUNC_CODE), "cannot write the loop extension")
            try check(EGifPutExtensionBlock(gif, Int32(application.count), application), "cannot write the loop extension")
            try check(EGifPutExtensionBlock(gif, Int32(loopForever.count), loopForever), "cannot write the loop extension")
            try check(EGifPutExtensionTrailer(gif), "cannot write the loop extension")
        }

        for (index, frame) in frames.enumerated() {
            var control = GraphicsControlBlock()
            control.DisposalMode = DISPOSE_DO_NOT  // frames are opaque and full-size; nothing to restore
            control.UserInputFlag = false
            control.DelayTime = Int32(frame.delayCentiseconds)
            control.TransparentColor = NO_TRANSPARENT_COLOR
            var controlBytes = [GifByteType](repeating: 0, count: 4)
            let controlLength = EGifGCBToExtension(&control, &controlBytes)
            try check(EGifPutExtension(gif, GRAPHICS_EXT_FUNC_CODE, Int32(controlLength), controlBytes),
                      "frame \(index): cannot write the graphics control block")

            let quantised = try quantise(frame, index: index)
            var indices = quantised.indices
            let palette = quantised.palette
            guard let colorMap = GifMakeMapObject(Int32(palette.count), palette) else {
                throw GIFError(description: "GIF: frame \(index): out of memory for the palette")
            }
            defer { GifFreeMapObject(colorMap) }  // EGifPutImageDesc keeps its own copy
            try check(EGifPutImageDesc(gif, 0, 0, Int32(width), Int32(height), false, colorMap),
                      "frame \(index): cannot write the image descriptor")
            try indices.withUnsafeMutableBufferPointer { pixels in
                for y in 0..<height {
                    try check(EGifPutLine(gif, pixels.baseAddress! + y * width, Int32(width)),
                              "frame \(index): cannot write row \(y)")
                }
            }
        }
    }

    /// Palette indices and a palette (a power of two, 2…256 entries, as GIF requires) for one frame.
    ///
    /// `GifQuantizeBuffer` does a median cut over colours truncated to 5 bits per channel and
    /// returns those truncated values (255 comes back as 248, a solid 30 as 24). Its partition is
    /// kept, but each entry is recomputed as the mean of the original pixels it stands for, so
    /// solid colours survive exactly and every pixel stays within its cell of colour space.
    private static func quantise(_ frame: GIFFrame, index: Int) throws -> (indices: [GifByteType], palette: [GifColorType]) {
        let count = frame.width * frame.height
        var red = [GifByteType](repeating: 0, count: count)
        var green = red, blue = red, indices = red
        for i in 0..<count {
            red[i] = frame.rgb[3 * i]
            green[i] = frame.rgb[3 * i + 1]
            blue[i] = frame.rgb[3 * i + 2]
        }
        var palette = [GifColorType](repeating: GifColorType(), count: 256)
        var used: Int32 = 256  // in: the most colours wanted; out: how many it made
        guard GifQuantizeBuffer(UInt32(frame.width), UInt32(frame.height), &used, &red, &green, &blue,
                                &indices, &palette) == GIF_OK else {
            throw GIFError(description: "GIF: frame \(index): colour quantisation failed (out of memory)")
        }

        var sums = [Int](repeating: 0, count: 256 * 3), members = [Int](repeating: 0, count: 256)
        for i in 0..<count {
            let k = Int(indices[i])
            sums[3 * k] += Int(red[i])
            sums[3 * k + 1] += Int(green[i])
            sums[3 * k + 2] += Int(blue[i])
            members[k] += 1
        }
        for k in 0..<256 where members[k] > 0 {
            let n = members[k], mean = { (sum: Int) in GifByteType((sum + n / 2) / n) }
            palette[k] = GifColorType(Red: mean(sums[3 * k]), Green: mean(sums[3 * k + 1]), Blue: mean(sums[3 * k + 2]))
        }
        let size = 1 << max(1, Int(GifBitSize(max(used, 1))))
        return (indices, Array(palette.prefix(size)))
    }

    /// The common frame size, after checking what giflib cannot express or would misread.
    private static func canvasSize(_ frames: [GIFFrame]) throws -> (width: Int, height: Int) {
        guard let first = frames.first else { throw GIFError(description: "GIF: no frames to write") }
        for (index, frame) in frames.enumerated() {
            guard (1...65535).contains(frame.width), (1...65535).contains(frame.height) else {
                throw GIFError(description: "GIF: frame \(index) is \(frame.width)×\(frame.height); sides must be 1…65535")
            }
            guard frame.width == first.width, frame.height == first.height else {
                throw GIFError(description: "GIF: frame \(index) is \(frame.width)×\(frame.height) but frame 0 is "
                               + "\(first.width)×\(first.height); all frames must have the same size")
            }
            guard frame.rgb.count == frame.width * frame.height * 3 else {
                throw GIFError(description: "GIF: frame \(index) is \(frame.width)×\(frame.height) but has "
                               + "\(frame.rgb.count) bytes, not \(frame.width * frame.height * 3)")
            }
            guard (0...65535).contains(frame.delayCentiseconds) else {
                throw GIFError(description: "GIF: frame \(index) delay \(frame.delayCentiseconds) cs is outside 0…65535")
            }
        }
        return (first.width, first.height)
    }
}
