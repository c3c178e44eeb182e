import CPNG
import CPNGText
import Foundation
import Tensors

/// An 8-bit RGB image.
public struct RGBImage: Sendable {
    public let width: Int
    public let height: Int
    /// Row-major RGB bytes, `height × width × 3`.
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// From a decoded image tensor [3, H, W] (or [1, 3, H, W]) in [-1, 1], as diffusers'
    /// `VaeImageProcessor` does: (x / 2 + 0.5) clamped to [0, 1], × 255, rounded.
    public init(tensor x: Tensor) throws {
        let dims = x.rank == 4 ? Array(x.shape.dropFirst()) : x.shape
        guard dims.count == 3, dims[0] == 3, x.rank == 3 || x.shape[0] == 1 else {
            throw TensorError("image: expected [3, H, W] or [1, 3, H, W], got \(x.shape)")
        }
        let (h, w) = (dims[1], dims[2])
        var px = [UInt8](repeating: 0, count: h * w * 3)
        for c in 0..<3 {
            for i in 0..<(h * w) {
                let v = min(max(x.pointer[c * h * w + i] / 2 + 0.5, 0), 1)
                px[i * 3 + c] = UInt8((v * 255).rounded())
            }
        }
        self.init(width: w, height: h, pixels: px)
    }
}

public struct ImageWriteError: Error, CustomStringConvertible {
    public let description: String
}

/// PNG output through libpng, with `tEXt` chunks (A1111 keeps its infotext in "parameters"),
/// written atomically: a temporary file in the same folder, renamed over the target when done.
public enum PNGFile {
    public static func write(_ image: RGBImage, to path: String, text: [(key: String, value: String)] = []) throws {
        let data = try encode(image, text: text)
        try AtomicFile.write(data, to: path)
    }

    /// The PNG bytes.
    public static func encode(_ image: RGBImage, text: [(key: String, value: String)] = []) throws -> Data {
        guard image.width > 0, image.height > 0, image.pixels.count == image.width * image.height * 3 else {
            throw ImageWriteError(description: "PNG: image \(image.width)×\(image.height) has \(image.pixels.count) bytes")
        }
        var png: png_structp? = png_create_write_struct(PNG_LIBPNG_VER_STRING, nil, nil, nil)
        guard png != nil else { throw ImageWriteError(description: "PNG: libpng could not start") }
        var info: png_infop? = png_create_info_struct(png)
        defer { png_destroy_write_struct(&png, &info) }
        // libpng reports errors with longjmp, which Swift cannot catch; the inputs are checked above
        // and output goes to memory, so none are expected. Collect the bytes with a write callback.
        final class Sink { var data = Data() }
        let sink = Sink()
        let unmanaged = Unmanaged.passUnretained(sink)
        png_set_write_fn(png, unmanaged.toOpaque(), { png, bytes, count in
            let sink = Unmanaged<Sink>.fromOpaque(png_get_io_ptr(png)!).takeUnretainedValue()
            sink.data.append(bytes!, count: count)
        }, nil)
        png_set_IHDR(png, info, png_uint_32(image.width), png_uint_32(image.height), 8, PNG_COLOR_TYPE_RGB,
                     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT)
        // tEXt is Latin-1 by definition; A1111 writes UTF-8 there too, and readers accept it.
        var cStrings: [UnsafeMutablePointer<CChar>] = []
        defer { cStrings.forEach { free($0) } }
        var entries = text.map { entry -> png_text in
            var t = png_text()
            t.compression = PNG_TEXT_COMPRESSION_NONE
            let k = strdup(entry.key)!, v = strdup(entry.value)!
            cStrings += [k, v]
            t.key = k
            t.text = v
            t.text_length = strlen(v)
            return t
        }
        if !entries.isEmpty { png_set_text(png, info, &entries, Int32(entries.count)) }
        png_write_info(png, info)
        image.pixels.withUnsafeBufferPointer { buf in
            for row in 0..<image.height {
                png_write_row(png, buf.baseAddress! + row * image.width * 3)
            }
        }
        png_write_end(png, info)
        return sink.data
    }
}

extension PNGFile {
    public struct ReadError: Error, CustomStringConvertible { public let description: String }

    /// The text chunks (tEXt, zTXt, iTXt) before the image data, in file order — where A1111,
    /// Pareidolia and Pillow put `parameters`. Invalid UTF-8 is decoded as Latin-1 (tEXt's own
    /// encoding).
    public static func readText(_ path: String) throws -> [(key: String, value: String)] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ReadError(description: "\(path): cannot be read") }
        return try readText(data, source: path)
    }

    /// Refuses a PNG whose header or chunks claim more than is plausible (over `maxSide` pixels a
    /// side or `maxPixels` in all) or more than the file holds, before a decoder allocates for it.
    /// Every chunk to IEND is checked: decoders read the chunks after the image data too.
    public static func check(_ data: Data, source: String, maxSide: Int = 16384, maxPixels: Int = 1 << 26) throws {
        var error = [CChar](repeating: 0, count: 256)
        let status = data.withUnsafeBytes { raw in
            pd_png_check(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, UInt(maxSide), UInt(maxPixels), 1, &error)
        }
        guard status == 0 else { throw ReadError(description: "\(source): \(String(cString: error))") }
    }

    public static func readText(_ data: Data, source: String) throws -> [(key: String, value: String)] {
        final class Found { var entries: [(key: String, value: String)] = [] }
        let found = Found()
        var error = [CChar](repeating: 0, count: 256)
        let n = data.withUnsafeBytes { raw -> Int32 in
            pd_png_text(raw.bindMemory(to: UInt8.self).baseAddress, raw.count, Unmanaged.passUnretained(found).toOpaque(), { ctx, key, text, length in
                let found = Unmanaged<Found>.fromOpaque(ctx!).takeUnretainedValue()
                let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(text!).assumingMemoryBound(to: UInt8.self), count: length)
                let value = String(validating: bytes, as: UTF8.self) ?? String(bytes.map { Character(Unicode.Scalar($0)) })
                found.entries.append((String(cString: key!), value))
            }, &error)
        }
        guard n >= 0 else { throw ReadError(description: "\(source): \(String(cString: error))") }
        return found.entries
    }
}

/// Writes files so that readers see the old content or the new, never a part.
public enum AtomicFile {
    public static func write(_ data: Data, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).\(ProcessInfo.processInfo.processIdentifier).tmp")
        do {
            try data.write(to: tmp)
            let fd = open(tmp.path, O_RDONLY)
            if fd >= 0 { fsync(fd); close(fd) }
            guard rename(tmp.path, url.path) == 0 else {
                throw ImageWriteError(description: "\(path): cannot replace the file (\(String(cString: strerror(errno))))")
            }
        } catch let e as ImageWriteError {
            try? FileManager.default.removeItem(at: tmp)
            throw e
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw ImageWriteError(description: "\(path): cannot write (\(error.localizedDescription))")
        }
    }
}
