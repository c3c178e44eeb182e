import CZlib
import Foundation

/// gunzip for the bundled BPE vocabulary (zlib's inflate with gzip framing).
enum Gzip {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func decompress(_ input: UnsafeRawBufferPointer, what: String) throws -> Data {
        var stream = z_stream()
        // 15 window bits + 16 asks zlib for gzip framing.
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw Failure(description: "\(what): cannot initialise zlib")
        }
        defer { inflateEnd(&stream) }
        var output = Data()
        var chunk = [UInt8](repeating: 0, count: 1 << 20)
        stream.next_in = UnsafeMutablePointer(mutating: input.bindMemory(to: Bytef.self).baseAddress)
        stream.avail_in = uInt(input.count)
        while true {
            let status: Int32 = chunk.withUnsafeMutableBufferPointer { buf in
                stream.next_out = buf.baseAddress
                stream.avail_out = uInt(buf.count)
                return inflate(&stream, Z_NO_FLUSH)
            }
            output.append(contentsOf: chunk[0..<(chunk.count - Int(stream.avail_out))])
            if status == Z_STREAM_END { return output }
            guard status == Z_OK else { throw Failure(description: "\(what): corrupt gzip data (zlib status \(status))") }
            if stream.avail_in == 0 && stream.avail_out != 0 {
                throw Failure(description: "\(what): truncated gzip data")
            }
        }
    }
}
